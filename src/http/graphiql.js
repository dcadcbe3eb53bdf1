// GraphiQL on this server's own endpoints: queries and mutations over HTTP, subscriptions
// over WebSocket (graphql-transport-ws, the client GraphiQL bundles). The API token pasted
// above it goes with every request (Authorization header) and socket (connection_init),
// and is kept in this browser's localStorage until forgotten.
(function () {
  const http = new URL('/graphql', window.location.href);
  const ws = new URL('/graphql/ws', window.location.href);
  ws.protocol = ws.protocol === 'https:' ? 'wss:' : 'ws:';
  const defaultQuery = `# store-monitor: how much of their business hours each store was offline.
#
# Run an operation with Ctrl-Enter (or the ▶ button). The Docs pane (the book icon,
# top left) describes every type and field.

query Latest {
  dataset { stores polls newestPoll dataVersion }
  reports(first: 5) {
    edges { node { id status interpolation asOf progress csvUrl } }
  }
}

mutation Trigger {
  triggerReport(input: { interpolation: NEAREST }) { id status }
}

# Paste a report's id here to follow it until it is COMPLETE.
subscription Follow($id: ID!) {
  report(id: $id) { status storesDone storesTotal progress csvUrl error }
}
`;
  const KEY = 'store-monitor.token';
  const form = document.getElementById('auth');
  const input = document.getElementById('token');
  const status = document.getElementById('auth-status');
  const root = ReactDOM.createRoot(document.getElementById('graphiql'));
  input.value = localStorage.getItem(KEY) || '';

  const say = (text, bad) => {
    status.textContent = text;
    status.className = bad ? 'bad' : '';
  };

  // Tells whether the server takes the token (or needs one), and which stores it sees.
  async function check(token) {
    try {
      const response = await fetch(http, {
        method: 'POST',
        headers: Object.assign({ 'Content-Type': 'application/json' },
          token ? { Authorization: `Bearer ${token}` } : {}),
        body: JSON.stringify({ query: '{ me { groups } }' }),
      });
      if (response.ok) {
        const body = await response.json().catch(() => ({}));
        const groups = body.data && body.data.me && body.data.me.groups;
        if (!token) say('no token: this server is open');
        else if (groups) say(`token accepted: it sees the stores of ${groups.join(', ')} alone`);
        else say('token accepted');
      } else {
        const body = await response.json().catch(() => ({}));
        const error = (body.errors && body.errors[0]) || {};
        say(error.message || `the server answered ${response.status}`, true);
      }
    } catch (e) {
      say(`cannot reach the server: ${e.message}`, true);
    }
  }

  function render() {
    const token = input.value.trim();
    const auth = token ? { Authorization: `Bearer ${token}` } : undefined;
    const fetcher = GraphiQL.createFetcher({
      url: http.toString(),
      subscriptionUrl: ws.toString(),
      headers: auth,
      wsConnectionParams: auth,
    });
    root.render(
      React.createElement(GraphiQL, {
        fetcher,
        defaultQuery,
        defaultEditorToolsVisibility: true,
      }),
    );
    check(token);
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (token) localStorage.setItem(KEY, token);
    else localStorage.removeItem(KEY);
    render();
  });
  document.getElementById('forget').addEventListener('click', () => {
    input.value = '';
    localStorage.removeItem(KEY);
    render();
  });
  render();
})();
