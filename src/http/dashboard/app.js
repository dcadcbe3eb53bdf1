// The dashboard: the stores down now, the data, running a report with its progress, the
// latest report's worst stores, and one store's week and incidents. Everything comes through the public GraphQL API (api.js);
// `#/` is the overview and `#/store/<id>` a store's page.

import { ApiError, request, subscribe, token, whenLive } from './api.js';
import { instant, localFormat, timelineChart } from './chart.js';

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 25;

/** The six figures: field, column heading, unit, and whether a bigger value is bad. */
const FIGURES = [
  ['uptimeLastHour', 'Up, last hour', 'min', false],
  ['uptimeLastDay', 'Up, last day', 'h', false],
  ['uptimeLastWeek', 'Up, last week', 'h', false],
  ['downtimeLastHour', 'Down, last hour', 'min', true],
  ['downtimeLastDay', 'Down, last day', 'h', true],
  ['downtimeLastWeek', 'Down, last week', 'h', true],
];
const SIX = FIGURES.map(([field]) => field).join(' ');
const FIELD_ENUM = (field) => field.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();

const REPORT = 'id status interpolation asOf finishedAt storesTotal storesDone progress error';
const DATASET = `stores polledStores polls businessHours timezones newestPoll dataVersion
  loads(first: 12) { id kind file outcome rowsRead rowsInserted rowsRejected changed error finishedAt
    rejectedRows(first: 20) { line reason raw } }`;

function node(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === 'class') element.className = value;
    else if (key.startsWith('on')) element.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) element.setAttribute(key, value);
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined));
  return element;
}

const utc = new Intl.DateTimeFormat('en-GB', {
  timeZone: 'UTC', dateStyle: 'medium', timeStyle: 'short', hourCycle: 'h23',
});
const when = (text) => (text ? `${utc.format(instant(text))} UTC` : '—');
const number = (n) => n.toLocaleString('en-US');
const figure = (value) => value.toFixed(2);

// ---- Errors -------------------------------------------------------------------------

function showError(error) {
  const alert = $('alert');
  if (!error) {
    alert.hidden = true;
    return;
  }
  let text = error.message;
  if (error.code === 'UNAUTHENTICATED') {
    text = `${text} Paste an API token under “API token” at the top.`;
    $('auth').open = true;
  } else if (error.code === 'FORBIDDEN') {
    text = `${text} Your token's role may not do this.`;
  }
  alert.textContent = text;
  alert.hidden = false;
}

async function attempt(work) {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof ApiError)) console.error(error);
    showError(error);
    return undefined;
  }
}

// ---- The data -------------------------------------------------------------------------

function renderDataset(dataset) {
  const figures = $('data-figures');
  figures.replaceChildren(...[
    ['Stores', number(dataset.stores)],
    ['Stores polled', number(dataset.polledStores)],
    ['Polls', number(dataset.polls)],
    ['Business-hours rows', number(dataset.businessHours)],
    ['Stores with a time zone', number(dataset.timezones)],
    ['Newest poll', when(dataset.newestPoll)],
  ].map(([label, value]) => node('div', {}, node('dt', {}, label), node('dd', {}, value))));
  figures.removeAttribute('aria-busy');

  // The last reload: the newest load of each kind of file.
  const latest = new Map();
  for (const load of dataset.loads) if (!latest.has(load.kind)) latest.set(load.kind, load);
  const loads = [...latest.values()];
  if (loads.length === 0) {
    $('loads').replaceChildren(node('p', {}, scope
      ? 'The input files are the whole fleet\'s: this token sees its groups\' stores alone.'
      : 'No file has been loaded yet.'));
    return;
  }
  const names = { STATUS: 'Polls', HOURS: 'Business hours', TIMEZONES: 'Time zones', GROUPS: 'Store groups' };
  const rows = loads.flatMap((load) => {
    const row = node('tr', {},
      node('td', {}, names[load.kind] ?? load.kind),
      // The name says which file; the whole path (the server's) is there on hover.
      node('td', { title: load.file }, load.file.split(/[\\/]/).at(-1)),
      node('td', { class: load.outcome === 'FAILED' ? 'bad' : '' }, load.outcome.toLowerCase()),
      node('td', {}, number(load.rowsRead)),
      node('td', {}, number(load.rowsInserted)),
      node('td', { class: load.rowsRejected > 0 ? 'bad' : '' }, number(load.rowsRejected)),
      node('td', {}, when(load.finishedAt)));
    const extra = [];
    if (load.error) extra.push(node('tr', { class: 'rejected' }, node('td', { colspan: 7 }, `Why it failed: ${load.error}`)));
    if (load.rejectedRows.length > 0) {
      extra.push(node('tr', { class: 'rejected' }, node('td', { colspan: 7 },
        node('details', {},
          node('summary', {}, `${number(load.rowsRejected)} rejected rows${load.rowsRejected > load.rejectedRows.length ? ` (the first ${load.rejectedRows.length})` : ''}`),
          node('ul', {}, load.rejectedRows.map((r) => node('li', {}, `line ${r.line}: ${r.reason} — `, node('code', {}, r.raw))))))));
    }
    return [row, ...extra];
  });
  $('loads').replaceChildren(node('table', {},
    node('caption', {}, 'The newest load of each input file.'),
    node('thead', {}, node('tr', {}, ['Input', 'File', 'Outcome', 'Rows read', 'Rows loaded', 'Rejected', 'Finished'].map((h) => node('th', { scope: 'col' }, h)))),
    node('tbody', {}, rows)));
}

async function loadDataset() {
  const data = await attempt(() => request(`{ dataset { ${DATASET} } }`));
  if (data) renderDataset(data.dataset);
}

// ---- Down now --------------------------------------------------------------------------

const DOWN_SHOWN = 50;

async function loadDown() {
  const data = await attempt(() => request(
    `query Down($first: Int) { incidents(filter: { open: true }, order: WORST_FIRST, first: $first) {
      totalCount nodes { id storeId openedAt inactivePolls } } }`, { first: DOWN_SHOWN }));
  const incidents = data?.incidents;
  if (!incidents) return;
  const count = $('down-count');
  const n = incidents.totalCount;
  count.textContent = n === 0 ? 'Every store is up (within its business hours).'
    : `${number(n)} ${n === 1 ? 'store is' : 'stores are'} down${n > DOWN_SHOWN ? `; the ${DOWN_SHOWN} down longest:` : ', longest first:'}`;
  count.className = n > 0 ? 'bad' : '';
  count.dataset.count = String(n);
  $('down-list').replaceChildren(...incidents.nodes.map((incident) => node('li', { 'data-store': incident.storeId },
    node('a', { href: `#/store/${encodeURIComponent(incident.storeId)}` }, incident.storeId),
    ` down since ${when(incident.openedAt)} (${number(incident.inactivePolls)} inactive polls)`)));
}

/** Reads the panel again after a burst of events, once. */
let downPending = null;
function downChanged() {
  if (downPending) return;
  downPending = setTimeout(() => {
    downPending = null;
    loadDown();
  }, 200);
}

// ---- Running a report -----------------------------------------------------------------

const run = { id: null, stop: null };
const isLive = (report) => report.status === 'PENDING' || report.status === 'RUNNING';

function renderRun(report) {
  const progress = $('progress');
  progress.value = report.progress;
  progress.setAttribute('aria-valuetext', `${Math.round(report.progress * 100)} %`);
  const done = report.storesTotal ? ` — ${number(report.storesDone)} of ${number(report.storesTotal)} stores` : '';
  const says = {
    PENDING: 'Queued, waiting for a worker…',
    RUNNING: `Computing${done}…`,
    COMPLETE: `Complete${done}.`,
    FAILED: `Failed: ${report.error ?? 'no reason given'}.`,
    CANCELLED: 'Cancelled.',
  };
  $('run-status').textContent = says[report.status] ?? report.status;
  $('run-status').dataset.status = report.status;
  const live = isLive(report);
  $('cancel-report').disabled = !live;
  $('run-report').disabled = live;
}

function follow(id) {
  run.stop?.();
  run.id = id;
  run.stop = subscribe(`subscription Follow($id: ID!) { report(id: $id) { ${REPORT} } }`, { id }, {
    next: (data) => {
      renderRun(data.report);
      if (data.report.status === 'COMPLETE') showReport(data.report);
    },
    error: (error) => {
      showError(error);
      $('run-report').disabled = false;
    },
    complete: () => {
      run.stop = null;
    },
  });
}

async function runReport(event) {
  event.preventDefault();
  showError(null);
  $('run-report').disabled = true;
  const interpolation = $('interpolation').value;
  const data = await attempt(() => request(
    `mutation Run($input: TriggerReportInput) { triggerReport(input: $input) { ${REPORT} } }`,
    { input: { interpolation } }));
  if (!data) {
    $('run-report').disabled = false;
    return;
  }
  renderRun(data.triggerReport);
  follow(data.triggerReport.id);
}

async function cancelReport() {
  if (!run.id) return;
  $('cancel-report').disabled = true;
  const data = await attempt(() => request(
    `mutation Cancel($id: ID!) { cancelReport(id: $id) { ${REPORT} } }`, { id: run.id }));
  if (data) renderRun(data.cancelReport);
  else $('cancel-report').disabled = false;
}

// ---- The latest report's rows ---------------------------------------------------------

const table = {
  report: null,
  orderBy: { field: 'DOWNTIME_LAST_WEEK', direction: 'DESC' },
  storeIds: null,
  cursors: [null], // the `after` of each page seen so far; the last is the current page's
  next: null,
};

function renderHead() {
  const columns = [['storeId', 'Store', '', false], ...FIGURES];
  $('rows-head').replaceChildren(...columns.map(([field, label, unit]) => {
    const value = field === 'storeId' ? 'STORE_ID' : FIELD_ENUM(field);
    const sorted = table.orderBy.field === value;
    const heading = unit ? `${label} (${unit})` : label;
    return node('th', {
      scope: 'col',
      'aria-sort': sorted ? (table.orderBy.direction === 'ASC' ? 'ascending' : 'descending') : null,
    }, node('button', {
      type: 'button',
      'data-field': value,
      'aria-label': `Sort by ${heading}`,
      onclick: () => sortBy(value),
    }, heading));
  }));
}

function sortBy(field) {
  const same = table.orderBy.field === field;
  const direction = same ? (table.orderBy.direction === 'ASC' ? 'DESC' : 'ASC') : (field === 'STORE_ID' ? 'ASC' : 'DESC');
  table.orderBy = { field, direction };
  table.cursors = [null];
  renderHead();
  loadRows();
}

function showReport(report) {
  if (table.report?.id === report.id && report.status === table.report.status) return;
  table.report = report;
  table.cursors = [null];
  const interpolation = report.interpolation === 'NEAREST' ? 'nearest poll' : 'forward fill';
  $('report-meta').textContent = `As of ${when(report.asOf)}, read by ${interpolation}; ` +
    `finished ${when(report.finishedAt)}. Report ${report.id}.`;
  $('download').disabled = false;
  loadRows();
}

async function loadRows() {
  if (!table.report) return;
  const after = table.cursors.at(-1);
  const data = await attempt(() => request(
    `query Rows($id: ID!, $first: Int, $after: String, $orderBy: ReportRowOrder, $filter: ReportRowFilter) {
      report(id: $id) { rows(first: $first, after: $after, orderBy: $orderBy, filter: $filter) {
        totalCount pageInfo { hasNextPage endCursor } nodes { storeId ${SIX} } } } }`,
    {
      id: table.report.id,
      first: PAGE_SIZE,
      after,
      orderBy: table.orderBy,
      filter: table.storeIds ? { storeIds: table.storeIds } : null,
    }));
  const rows = data?.report?.rows;
  if (!rows) return;
  const body = $('rows').tBodies[0];
  if (rows.nodes.length === 0) {
    body.replaceChildren(node('tr', {}, node('td', { colspan: 7, class: 'empty' },
      table.storeIds ? 'No store of the report has these ids.' : 'The report has no rows.')));
  } else {
    body.replaceChildren(...rows.nodes.map((row) => node('tr', {},
      node('td', {}, node('a', { href: `#/store/${encodeURIComponent(row.storeId)}` }, row.storeId)),
      FIGURES.map(([field, , , bad]) => node('td', { class: bad && row[field] > 0 ? 'bad' : '' }, figure(row[field]))))));
  }
  table.next = rows.pageInfo.hasNextPage ? rows.pageInfo.endCursor : null;
  const first = (table.cursors.length - 1) * PAGE_SIZE;
  $('page-info').textContent = rows.totalCount === 0 ? 'No rows.'
    : `Stores ${number(first + 1)}–${number(first + rows.nodes.length)} of ${number(rows.totalCount)}`;
  $('previous').disabled = table.cursors.length <= 1;
  $('next').disabled = !table.next;
}

function filterRows(event) {
  event.preventDefault();
  // Commas (or lines) separate ids: an id may hold a space.
  const ids = $('filter').value.split(/[,\n]/).map((id) => id.trim()).filter(Boolean);
  table.storeIds = ids.length > 0 ? ids.slice(0, 1000) : null;
  table.cursors = [null];
  loadRows();
}

async function download() {
  // The link is signed for 15 minutes: ask for a fresh one at each click.
  const data = await attempt(() => request('query Csv($id: ID!) { report(id: $id) { csvUrl } }', { id: table.report.id }));
  const url = data?.report?.csvUrl;
  if (!url) return;
  const link = node('a', { href: url, download: `report-${table.report.id}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
}

async function loadLatest() {
  const data = await attempt(() => request(`{ latestReport { ${REPORT} } }`));
  if (data?.latestReport) showReport(data.latestReport);
}

// ---- A store's page -------------------------------------------------------------------

async function showStore(storeId) {
  $('store-title').textContent = `Store ${storeId}`;
  $('store-figures').replaceChildren();
  $('chart').replaceChildren(node('p', {}, 'Loading…'));
  $('hours').replaceChildren();
  $('store-meta').textContent = '';
  const asOf = table.report?.asOf ?? null;
  const interpolation = table.report?.interpolation ?? 'NEAREST';
  const data = await attempt(() => request(
    `query Store($id: String!, $asOf: DateTime, $interpolation: Interpolation!) {
      store(id: $id) { storeId timezone timezoneDefaulted businessHoursDefaulted
        businessHours { day start end }
        uptime(asOf: $asOf, interpolation: $interpolation) { ${SIX} }
        timeline(asOf: $asOf, interpolation: $interpolation) { start end open status }
        incidents(first: 100) { totalCount nodes { id openedAt resolvedAt open inactivePolls } } } }`,
    { id: storeId, asOf, interpolation }));
  if (!data) return;
  const store = data.store;
  if (!store) {
    $('store-meta').textContent = scope ? 'None of this token\'s stores has this id.' : 'No input file names this store.';
    $('chart').replaceChildren();
    return;
  }
  const zone = store.timezoneDefaulted ? `${store.timezone} (the default: no time zone is known for it)` : store.timezone;
  $('store-meta').textContent = `Time zone ${zone}. Read by ${interpolation === 'NEAREST' ? 'nearest poll' : 'forward fill'}` +
    (asOf ? `, as of the latest report (${when(asOf)}).` : ', as of the newest poll.');

  if (store.uptime) {
    $('store-figures').replaceChildren(...FIGURES.map(([field, label, unit, bad]) => node('div', {},
      node('dt', {}, label),
      node('dd', { class: bad && store.uptime[field] > 0 ? 'bad' : '' }, `${figure(store.uptime[field])} ${unit}`))));
  } else {
    $('store-figures').replaceChildren(node('p', {}, 'It has no poll before the report’s time: no figures.'));
  }

  const days = { MONDAY: 'Monday', TUESDAY: 'Tuesday', WEDNESDAY: 'Wednesday', THURSDAY: 'Thursday', FRIDAY: 'Friday', SATURDAY: 'Saturday', SUNDAY: 'Sunday' };
  $('hours').replaceChildren(store.businessHours.length === 0
    ? node('p', {}, store.businessHoursDefaulted ? 'Open around the clock (the default: the business-hours file has no row for it).' : 'Open around the clock.')
    : node('table', {},
      node('caption', {}, `Local time (${store.timezone}).`),
      node('thead', {}, node('tr', {}, ['Day', 'Opens', 'Closes'].map((h) => node('th', { scope: 'col' }, h)))),
      node('tbody', {}, store.businessHours.map((h) => node('tr', {},
        node('td', {}, days[h.day] ?? h.day), node('td', {}, h.start), node('td', {}, h.end))))));

  const incidents = store.incidents.nodes;
  $('incidents').replaceChildren(incidents.length === 0
    ? node('p', {}, 'No incident: it has never been down two polls in a row within its business hours.')
    : node('table', {},
      node('caption', {}, `${number(store.incidents.totalCount)} incidents, newest first${store.incidents.totalCount > incidents.length ? ` (the ${incidents.length} newest)` : ''}.`),
      node('thead', {}, node('tr', {}, ['Down from', 'Back up', 'Inactive polls'].map((h) => node('th', { scope: 'col' }, h)))),
      node('tbody', {}, incidents.map((i) => node('tr', { class: i.open ? 'open-incident' : '' },
        node('td', {}, when(i.openedAt)),
        node('td', { class: i.open ? 'bad' : '' }, i.open ? 'still down' : when(i.resolvedAt)),
        node('td', {}, number(i.inactivePolls)))))));

  if (store.timeline.length === 0) {
    $('chart').replaceChildren(node('p', {}, 'No timeline: the store has no poll before the report’s time.'));
    return;
  }
  const from = store.timeline[0].start;
  const to = store.timeline.at(-1).end;
  const polls = [];
  let after = null;
  for (let page = 0; page < 20; page += 1) {
    const more = await attempt(() => request(
      `query Polls($id: String!, $from: DateTime, $to: DateTime, $after: String) {
        store(id: $id) { polls(from: $from, to: $to, first: 1000, after: $after) {
          pageInfo { hasNextPage endCursor } nodes { at status } } } }`,
      { id: storeId, from, to, after }));
    const connection = more?.store?.polls;
    if (!connection) break;
    polls.push(...connection.nodes);
    if (!connection.pageInfo.hasNextPage) break;
    after = connection.pageInfo.endCursor;
  }
  $('chart').replaceChildren(timelineChart({
    segments: store.timeline,
    polls,
    incidents,
    from: instant(from),
    to: instant(to),
    timeZone: store.timezone,
    storeId: store.storeId,
  }));
  const local = localFormat(store.timezone, { dateStyle: 'medium', timeStyle: 'short' });
  $('timeline-title').textContent = `The week to ${local.format(instant(to))}, in the store's local time`;
}

// ---- Pages, token and live updates ----------------------------------------------------

function route() {
  const match = window.location.hash.match(/^#\/store\/(.+)$/);
  $('overview').hidden = Boolean(match);
  $('store').hidden = !match;
  if (match) {
    showStore(decodeURIComponent(match[1]));
    document.title = `store-monitor · store ${decodeURIComponent(match[1])}`;
  } else {
    document.title = 'store-monitor';
  }
  window.scrollTo(0, 0);
}

/** The store groups the token sees alone; null: the whole fleet. */
let scope = null;

async function checkToken() {
  const status = $('token-status');
  try {
    const { me } = await request('{ me { groups } }');
    scope = me.groups;
    status.textContent = token.get() ? 'token accepted' : 'no token: this server is open';
    status.className = '';
    $('scope').textContent = scope ? `The stores of ${scope.join(', ')}` : '';
    $('scope').hidden = !scope;
    return true;
  } catch (error) {
    status.textContent = error.message;
    status.className = 'bad';
    showError(error);
    return false;
  }
}

let listening = false;

function listen() {
  if (listening) return;
  listening = true;
  // Events before the subscription started (a push while the page loaded, an outage of
  // the socket) reached no one: the panel is read again once it is live.
  whenLive(downChanged);
  // Stores going down and coming back, from whichever process stored the polls.
  subscribe('subscription { incidents { type incident { storeId } } }', {}, {
    next: ({ incidents: event }) => {
      downChanged();
      const page = window.location.hash.match(/^#\/store\/(.+)$/);
      if (page && decodeURIComponent(page[1]) === event.incident.storeId) showStore(event.incident.storeId);
    },
    error: showError,
  });
  subscribe(`subscription { dataset { ${DATASET} } }`, {}, {
    next: (data) => renderDataset(data.dataset),
    error: showError,
  });
  // Reports started or finished elsewhere (another tab, a client, the legacy API): one
  // that starts is followed when none is, and one that completes becomes the latest.
  subscribe(`subscription { reports { ${REPORT} } }`, {}, {
    next: ({ reports: report }) => {
      if (isLive(report) && !run.stop) {
        renderRun(report);
        follow(report.id);
      }
      if (report.status === 'COMPLETE' && (!table.report || instant(report.finishedAt) > instant(table.report.finishedAt ?? '1970-01-01T00:00:00Z'))) {
        showReport(report);
      }
    },
    error: showError,
  });
}

/** Follows the newest report if it is still queued or running, as if run from here. */
async function followNewest() {
  const data = await attempt(() => request(`{ reports(first: 1) { nodes { ${REPORT} } } }`));
  const newest = data?.reports.nodes[0];
  if (newest && isLive(newest) && !run.stop) {
    renderRun(newest);
    follow(newest.id);
  }
}

/** Everything the overview shows, and its live updates, once the server takes the token. */
async function load() {
  if (await checkToken()) {
    showError(null);
    await Promise.all([loadDown(), loadDataset(), loadLatest(), followNewest()]);
    listen();
  }
}

async function start() {
  $('token').value = token.get();
  $('token-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    token.set($('token').value.trim());
    await load();
  });
  $('forget').addEventListener('click', () => {
    $('token').value = '';
    token.set('');
    checkToken();
  });
  $('run-form').addEventListener('submit', runReport);
  $('cancel-report').addEventListener('click', cancelReport);
  $('filter-form').addEventListener('submit', filterRows);
  $('download').addEventListener('click', download);
  $('previous').addEventListener('click', () => {
    table.cursors.pop();
    loadRows();
  });
  $('next').addEventListener('click', () => {
    table.cursors.push(table.next);
    loadRows();
  });
  window.addEventListener('hashchange', route);
  renderHead();
  await load();
  route();
}

start();
