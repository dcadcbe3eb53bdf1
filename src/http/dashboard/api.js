// The dashboard's only door to the server: the public GraphQL API, over HTTP for queries
// and mutations and over one WebSocket (graphql-transport-ws) for subscriptions. The API
// token, when one is kept, goes with both (Authorization header, connection_init).

const TOKEN_KEY = 'store-monitor.token';
const endpoint = new URL('/graphql', window.location.href);
const socketUrl = new URL('/graphql/ws', window.location.href);
socketUrl.protocol = socketUrl.protocol === 'https:' ? 'wss:' : 'ws:';

/** An error the API answered with: its message, and `code` from `extensions.code`. */
export class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

export const token = {
  get: () => localStorage.getItem(TOKEN_KEY) || '',
  set(value) {
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
    socket.restart();
  },
};

function authorization() {
  const value = token.get();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

/** Runs a query or mutation; resolves to its `data`, or throws an ApiError. */
export async function request(query, variables = {}) {
  let response;
  try {
    response = await fetch(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/graphql-response+json', ...authorization() },
      body: JSON.stringify({ query, variables }),
    });
  } catch (e) {
    throw new ApiError(`cannot reach the server (${e.message})`, 'UNREACHABLE');
  }
  const body = await response.json().catch(() => null);
  const error = body?.errors?.[0];
  if (error) throw new ApiError(error.message, error.extensions?.code);
  if (!response.ok || !body?.data) {
    throw new ApiError(body?.error ?? `the server answered ${response.status}`, body?.code);
  }
  return body.data;
}

/**
 * One WebSocket for every subscription, opened on first use and opened again (with every
 * live subscription sent again) when it drops.
 */
const socket = {
  ws: null,
  ready: false,
  nextId: 1,
  live: new Map(), // id -> { query, variables, sink }
  onReady: [], // called once the subscriptions are (re)sent on a new connection
  retry: 0,

  open() {
    if (this.ws) return;
    const ws = new WebSocket(socketUrl, 'graphql-transport-ws');
    this.ws = ws;
    this.ready = false;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'connection_init', payload: authorization() }));
    ws.onmessage = (event) => this.receive(JSON.parse(event.data));
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.ready = false;
      // 4401/4403: the token is missing or may not read; say so instead of retrying.
      if (event.code === 4401 || event.code === 4403) {
        for (const { sink } of this.live.values()) sink.error(new ApiError(event.reason || 'not allowed', 'UNAUTHENTICATED'));
        this.live.clear();
        return;
      }
      if (this.live.size > 0) {
        const wait = Math.min(30000, 500 * 2 ** this.retry++);
        setTimeout(() => this.live.size > 0 && this.open(), wait);
      }
    };
  },

  restart() {
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, 'new token');
    if (this.live.size > 0) this.open();
  },

  receive(message) {
    switch (message.type) {
      case 'connection_ack':
        this.ready = true;
        this.retry = 0;
        for (const [id, sub] of this.live) this.send(id, sub);
        for (const ready of this.onReady) ready();
        break;
      case 'ping':
        this.ws.send(JSON.stringify({ type: 'pong' }));
        break;
      case 'next': {
        const sub = this.live.get(message.id);
        const error = message.payload?.errors?.[0];
        if (sub && error) sub.sink.error(new ApiError(error.message, error.extensions?.code));
        else if (sub) sub.sink.next(message.payload.data);
        break;
      }
      case 'error': {
        const sub = this.live.get(message.id);
        this.live.delete(message.id);
        const error = message.payload?.[0];
        sub?.sink.error(new ApiError(error?.message ?? 'subscription refused', error?.extensions?.code));
        break;
      }
      case 'complete': {
        const sub = this.live.get(message.id);
        this.live.delete(message.id);
        sub?.sink.complete?.();
        break;
      }
    }
  },

  send(id, { query, variables }) {
    this.ws.send(JSON.stringify({ id, type: 'subscribe', payload: { query, variables } }));
  },
};

/**
 * Calls `ready` each time the subscriptions start on a new connection (the first, and each
 * after a reconnect): what changed before then was told to nobody, so read it again.
 */
export function whenLive(ready) {
  socket.onReady.push(ready);
}

/**
 * Subscribes; `sink.next(data)` for each event, `sink.error(e)`, `sink.complete()`.
 * Returns a function that ends the subscription.
 */
export function subscribe(query, variables, sink) {
  const id = String(socket.nextId++);
  const sub = { query, variables, sink };
  socket.live.set(id, sub);
  if (socket.ready) socket.send(id, sub);
  else socket.open();
  return () => {
    if (socket.live.delete(id) && socket.ready) socket.ws.send(JSON.stringify({ id, type: 'complete' }));
  };
}
