// A store's timeline as an SVG chart: business hours shaded, inactive time red, polls as
// ticks under it, and the store's local time on the axis (day boundaries at its local
// midnights, so a DST week shows its 23- or 25-hour day).

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 1000;
const LEFT = 8;
const RIGHT = 8;
const LANE_TOP = 26;
const LANE_HEIGHT = 64;
const TICKS_TOP = LANE_TOP + LANE_HEIGHT + 6;
const TICK_HEIGHT = 12;
const HEIGHT = TICKS_TOP + TICK_HEIGHT + 8;
const QUARTER_HOUR = 15 * 60 * 1000;

/** Milliseconds since the epoch of an RFC 3339 instant (digits past milliseconds dropped). */
export function instant(text) {
  return Date.parse(text.replace(/(\.\d{3})\d+/, '$1'));
}

function element(name, attributes = {}, children = []) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

function titled(node, text) {
  node.append(element('title', {}, [text]));
  return node;
}

/** Formats instants in the store's zone. */
export function localFormat(timeZone, options) {
  return new Intl.DateTimeFormat('en-GB', { timeZone, hourCycle: 'h23', ...options });
}

/** The local midnights and six-hour marks in [from, to), as instants. */
function marks(from, to, timeZone) {
  const parts = localFormat(timeZone, { hour: '2-digit', minute: '2-digit' });
  const days = [];
  const hours = [];
  for (let t = Math.ceil(from / QUARTER_HOUR) * QUARTER_HOUR; t < to; t += QUARTER_HOUR) {
    const [hour, minute] = parts.format(t).split(':').map(Number);
    if (minute !== 0) continue;
    if (hour === 0) days.push(t);
    else if (hour % 6 === 0) hours.push({ t, hour });
  }
  return { days, hours };
}

function hours(ms) {
  return (ms / 3_600_000).toFixed(2);
}

/**
 * The chart of `segments` ({start, end, open, status}), `polls` ({at, status}) and
 * `incidents` ({openedAt, resolvedAt}, drawn as bars over the lane) over [from, to), read
 * in `timeZone`.
 */
export function timelineChart({ segments, polls, incidents = [], from, to, timeZone, storeId }) {
  const span = to - from;
  const x = (t) => LEFT + ((Math.min(Math.max(t, from), to) - from) / span) * (WIDTH - LEFT - RIGHT);
  const when = localFormat(timeZone, { weekday: 'short', hour: '2-digit', minute: '2-digit' });
  const totals = { open: 0, up: 0, down: 0 };

  const lane = element('g', { class: 'lane' });
  lane.append(element('rect', { class: 'closed', x: LEFT, y: LANE_TOP, width: WIDTH - LEFT - RIGHT, height: LANE_HEIGHT }));
  for (const segment of segments) {
    const start = instant(segment.start);
    const end = instant(segment.end);
    const inactive = segment.status === 'INACTIVE';
    if (segment.open) {
      totals.open += end - start;
      totals[inactive ? 'down' : 'up'] += end - start;
    }
    const classes = [segment.open ? 'open' : 'shut', inactive ? 'inactive' : 'active'].join(' ');
    const label = `${when.format(start)} – ${when.format(end)}: ${segment.open ? 'open' : 'closed'}, ${inactive ? 'inactive' : 'active'}`;
    lane.append(titled(element('rect', {
      class: `segment ${classes}`,
      x: x(start).toFixed(2),
      y: LANE_TOP,
      width: Math.max(0.5, x(end) - x(start)).toFixed(2),
      height: LANE_HEIGHT,
    }), label));
  }

  const axis = element('g', { class: 'axis' });
  const dayLabel = localFormat(timeZone, { weekday: 'short', day: 'numeric', month: 'short' });
  const { days, hours: sixes } = marks(from, to, timeZone);
  for (const { t, hour } of sixes) {
    axis.append(element('line', { class: 'hour', x1: x(t), x2: x(t), y1: LANE_TOP, y2: LANE_TOP + LANE_HEIGHT }));
    axis.append(element('text', { class: 'hour-label', x: x(t), y: LANE_TOP - 4 }, [String(hour).padStart(2, '0')]));
  }
  for (const t of days) {
    axis.append(element('line', { class: 'day', x1: x(t), x2: x(t), y1: 2, y2: TICKS_TOP + TICK_HEIGHT }));
    // A label that would run off the right edge ends at its line instead.
    const late = x(t) > WIDTH - RIGHT - 70;
    axis.append(element('text', {
      class: 'day-label', x: late ? x(t) - 3 : x(t) + 3, y: 12, 'text-anchor': late ? 'end' : 'start',
    }, [dayLabel.format(t)]));
  }

  const ticks = element('g', { class: 'polls' });
  for (const poll of polls) {
    const t = instant(poll.at);
    if (t < from || t >= to) continue;
    ticks.append(titled(element('line', {
      class: `poll ${poll.status === 'INACTIVE' ? 'inactive' : 'active'}`,
      x1: x(t), x2: x(t), y1: TICKS_TOP, y2: TICKS_TOP + TICK_HEIGHT,
    }), `poll ${when.format(t)}: ${poll.status.toLowerCase()}`));
  }

  const down = element('g', { class: 'incidents' });
  for (const incident of incidents) {
    const start = instant(incident.openedAt);
    const end = incident.resolvedAt ? instant(incident.resolvedAt) : to;
    if (end <= from || start >= to) continue;
    const label = `incident: down from ${when.format(start)}${incident.resolvedAt ? ` to ${when.format(end)}` : ', still down'}`;
    down.append(titled(element('line', {
      class: 'incident', x1: x(start), x2: Math.max(x(end), x(start) + 2), y1: LANE_TOP - 1.5, y2: LANE_TOP - 1.5,
    }), label));
  }

  const summary = `Timeline of store ${storeId}, ${when.format(from)} to ${when.format(to)} in ${timeZone}: ` +
    `open ${hours(totals.open)} h, of which active ${hours(totals.up)} h and inactive ${hours(totals.down)} h; ` +
    `${ticks.childElementCount} polls; ${down.childElementCount} incidents.`;
  const svg = element('svg', {
    class: 'timeline',
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: 'img',
    'aria-label': summary,
  }, [element('title', {}, [summary]), lane, axis, ticks, down]);
  svg.dataset.segments = String(segments.length);
  svg.dataset.incidents = String(down.childElementCount);
  svg.dataset.polls = String(ticks.childElementCount);
  return svg;
}
