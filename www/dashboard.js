// The teacher dashboard: one WebSocket for the room, every row ticked once per
// second with the wasm build of the attendance rules (computeAttendance).
import {
  api, clock, dateLabel, hhmm, loadTracker, params, percent, put, showMessage, wsUrl,
  PHASE_LABEL, STATUS_LABEL,
} from './common.js';

const $ = (id) => document.getElementById(id);
const message = $('message');
const SVG = 'http://www.w3.org/2000/svg';

const state = {
  room: params.get('room') || '',
  token: params.get('token') || '',
  session: null,
  participants: new Map(), // identity -> server participant object
  offsetMs: 0, // server clock - browser clock
  rows: new Map(), // identity -> { tr, cells, timelineKey }
  order: '',
};
let wasm = null;

const now = () => Date.now() + state.offsetMs;
const ms = (iso) => (iso ? Date.parse(iso) : NaN);

function setServerTime(iso) {
  const t = ms(iso);
  if (Number.isFinite(t)) state.offsetMs = t - Date.now();
}

function setLink(value) {
  const text = { connecting: 'Connecting…', live: 'Live updates', reconnecting: 'Reconnecting…', polling: 'Updating every 15 s', offline: 'Offline' }[value];
  put($('link'), text, value);
}

// ---- server connection: WebSocket with backoff, polling after 3 failures ----
const live = { ws: null, attempt: 0, failures: 0, pollTimer: null, retryTimer: null };

function connect() {
  live.retryTimer = null;
  const ws = new WebSocket(wsUrl(`/api/sessions/${encodeURIComponent(state.room)}/live?access_token=${encodeURIComponent(state.token)}`));
  live.ws = ws;
  let opened = false;
  ws.onopen = () => {
    opened = true;
    live.attempt = 0;
    live.failures = 0;
    stopPolling();
    setLink('live');
  };
  ws.onmessage = (event) => {
    let msg;
    try { msg = JSON.parse(event.data); } catch { return; }
    onMessage(msg);
  };
  ws.onclose = () => {
    live.ws = null;
    live.failures = opened ? 0 : live.failures + 1;
    const base = Math.min(30000, 1000 * 2 ** Math.min(live.attempt, 5));
    live.attempt += 1;
    live.retryTimer = setTimeout(connect, Math.min(30000, base * (0.8 + 0.4 * Math.random())));
    if (live.failures >= 3) startPolling();
    setLink(live.pollTimer ? 'polling' : 'reconnecting');
  };
}

function onMessage(msg) {
  if (msg.server_time) setServerTime(msg.server_time);
  switch (msg.type) {
    case 'attendance.snapshot':
      state.session = msg.session || null;
      state.participants = new Map((msg.participants || []).map((p) => [p.identity, p]));
      break;
    case 'attendance.updated':
      if (msg.session) state.session = msg.session;
      if (msg.attendance) state.participants.set(msg.identity || msg.attendance.identity, msg.attendance);
      break;
    case 'error':
      showMessage(message, msg.message || 'The server reported an error.', true);
      return;
    default:
      return;
  }
  $('updated').textContent = `· updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
  render();
}

async function pollOnce() {
  const room = encodeURIComponent(state.room);
  try {
    const [session, report] = await Promise.all([
      api('GET', `/api/sessions/${room}`, state.token),
      api('GET', `/api/sessions/${room}/attendance`, state.token),
    ]);
    if (live.ws && live.ws.readyState === WebSocket.OPEN) return;
    state.session = session;
    state.participants = new Map((report.participants || []).map((p) => [p.identity, p]));
    render();
  } catch (e) {
    showMessage(message, 'Could not reach the attendance service: ' + e.message, true);
  }
}

function startPolling() {
  if (live.pollTimer) return;
  live.pollTimer = setInterval(pollOnce, 15000);
  pollOnce();
}

function stopPolling() {
  clearInterval(live.pollTimer);
  live.pollTimer = null;
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && !live.ws && live.retryTimer) {
    clearTimeout(live.retryTimer);
    connect();
  }
});

// ---- rendering ----
function renderSession() {
  const s = state.session;
  $('room-name').textContent = state.room;
  if (!s) {
    put($('phase'), 'No session', 'none');
    return null;
  }
  $('title').textContent = s.title || `Class ${s.room}`;
  document.title = `${s.title || s.room} · Attendance`;
  const start = ms(s.scheduled_at);
  const classEnd = start + s.duration_minutes * 60000;
  const windowEnd = s.window_end ? ms(s.window_end) : classEnd + (s.grace_minutes || 0) * 60000;
  const meta = `· ${dateLabel(s.scheduled_at)} ${hhmm(s.scheduled_at)}–${hhmm(new Date(classEnd).toISOString())}` +
    (s.grace_minutes ? `, counting until ${hhmm(new Date(windowEnd).toISOString())}` : '');
  if ($('window').textContent !== meta) $('window').textContent = meta;
  $('window-range').textContent = `Timeline: ${hhmm(s.scheduled_at)} to ${hhmm(new Date(windowEnd).toISOString())}`;
  let phase = 'scheduled';
  try { phase = wasm.computeAttendance(s, null, now()).phase; } catch { /* keep */ }
  put($('phase'), PHASE_LABEL[phase] || phase, phase);
  return { start, classEnd, windowEnd, phase };
}

function cell(tr, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  tr.append(td);
  return td;
}

function makeRow(identity) {
  const tr = document.createElement('tr');
  tr.dataset.identity = identity;
  const who = cell(tr);
  const name = document.createElement('div');
  name.className = 'who';
  const id = document.createElement('div');
  id.className = 'id';
  who.append(name, id);
  const inMeeting = document.createElement('span');
  inMeeting.className = 'badge';
  cell(tr).append(inMeeting);
  const attended = cell(tr, 'num');
  attended.dataset.field = 'attended';
  const pct = cell(tr, 'num');
  pct.dataset.field = 'percentage';
  const status = document.createElement('span');
  status.className = 'badge';
  status.dataset.field = 'status';
  cell(tr).append(status);
  const joins = cell(tr, 'num');
  joins.dataset.field = 'join-count';
  const timeline = cell(tr, 'timeline');
  const row = { tr, name, id, inMeeting, attended, pct, status, joins, timeline, timelineKey: '' };
  state.rows.set(identity, row);
  return row;
}

function drawTimeline(row, p, w) {
  const t = now();
  const span = w.windowEnd - w.start;
  const x = (time) => Math.max(0, Math.min(1000, ((time - w.start) / span) * 1000));
  const parts = [];
  for (const c of p.cycles || []) {
    if (!c.joined_at) continue;
    const from = ms(c.joined_at);
    const open = !c.left_at;
    const to = open ? Math.min(t, w.windowEnd) : ms(c.left_at);
    const x1 = x(Math.max(from, w.start));
    const x2 = x(Math.min(to, w.windowEnd));
    if (x2 <= x1) continue;
    parts.push({ x1, x2, open, label: `${hhmm(c.joined_at)}–${open ? 'now' : hhmm(c.left_at)}` });
  }
  const nowX = w.phase === 'live' ? x(t) : -1;
  const key = parts.map((q) => `${q.x1.toFixed(1)}-${q.x2.toFixed(1)}${q.open ? 'o' : ''}`).join(',') + `|${nowX.toFixed(1)}`;
  if (key === row.timelineKey) return;
  row.timelineKey = key;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 1000 20');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', parts.length
    ? `In the meeting ${parts.map((q) => q.label).join(', ')}`
    : 'Not in the meeting during the counting window');
  const rect = (x1, x2, cls, title) => {
    const r = document.createElementNS(SVG, 'rect');
    r.setAttribute('x', x1);
    r.setAttribute('width', Math.max(2, x2 - x1));
    r.setAttribute('y', cls === 'track' || cls === 'grace' ? 4 : 2);
    r.setAttribute('height', cls === 'track' || cls === 'grace' ? 12 : 16);
    r.setAttribute('class', cls);
    if (title) {
      const tt = document.createElementNS(SVG, 'title');
      tt.textContent = title;
      r.append(tt);
    }
    svg.append(r);
  };
  rect(0, x(w.classEnd), 'track');
  if (w.windowEnd > w.classEnd) rect(x(w.classEnd), 1000, 'grace', 'Grace period');
  for (const q of parts) rect(q.x1, q.x2, q.open ? 'cycle open' : 'cycle', q.label);
  if (nowX >= 0) {
    const line = document.createElementNS(SVG, 'line');
    line.setAttribute('x1', nowX);
    line.setAttribute('x2', nowX);
    line.setAttribute('y1', 0);
    line.setAttribute('y2', 20);
    line.setAttribute('class', 'now');
    line.setAttribute('vector-effect', 'non-scaling-stroke');
    svg.append(line);
  }
  row.timeline.replaceChildren(svg);
}

function render() {
  const w = renderSession();
  $('class').hidden = false;
  $('csv').disabled = !state.session;
  const totals = { present: 0, late: 0, partial: 0, absent: 0, in: 0 };
  const list = [...state.participants.values()].sort((a, b) =>
    (a.name || a.identity).localeCompare(b.name || b.identity));
  for (const p of list) {
    const row = state.rows.get(p.identity) || makeRow(p.identity);
    let a = p;
    if (state.session) {
      try { a = wasm.computeAttendance(state.session, p, now()); } catch { a = p; }
    }
    put(row.name, p.name || p.identity);
    put(row.id, p.name && p.name !== p.identity ? p.identity : '');
    const presence = a.in_meeting ? ['yes', 'In meeting'] : a.heartbeat_stale ? ['stale', 'Connection lost'] : ['no', 'Not in meeting'];
    put(row.inMeeting, presence[1], presence[0]);
    put(row.attended, clock(a.attended_seconds));
    put(row.pct, percent(a.attendance_percentage));
    put(row.status, (STATUS_LABEL[a.status] || a.status) + (a.final ? ' · final' : ''), a.status);
    put(row.joins, String(a.join_count ?? (p.cycles || []).length));
    if (w) drawTimeline(row, p, w);
    totals[a.status] = (totals[a.status] || 0) + 1;
    if (a.in_meeting) totals.in += 1;
  }
  for (const [identity, row] of state.rows) {
    if (!state.participants.has(identity)) {
      row.tr.remove();
      state.rows.delete(identity);
    }
  }
  const order = list.map((p) => p.identity).join('\n');
  if (order !== state.order) {
    state.order = order;
    $('rows').replaceChildren(...list.map((p) => state.rows.get(p.identity).tr));
  }
  $('empty').hidden = list.length > 0;
  put($('sum-total'), String(list.length));
  put($('sum-in'), String(totals.in));
  for (const s of ['present', 'late', 'partial', 'absent']) put($(`sum-${s}`), String(totals[s]));
  if (!state.session) showMessage(message, `No session is scheduled in room ${state.room} yet.`);
  else if (!message.classList.contains('error')) showMessage(message, '');
}

async function downloadCsv() {
  const button = $('csv');
  button.disabled = true;
  try {
    const res = await fetch(`/api/sessions/${encodeURIComponent(state.room)}/attendance?format=csv`, {
      headers: { Authorization: 'Bearer ' + state.token, Accept: 'text/csv' },
      cache: 'no-store',
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const blob = await res.blob();
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `attendance-${state.room}.csv`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } catch (e) {
    showMessage(message, 'Could not download the CSV: ' + e.message, true);
  } finally {
    button.disabled = false;
  }
}

function start() {
  $('demo-start').hidden = true;
  $('session-meta').hidden = false;
  $('csv').hidden = false;
  $('class').hidden = false;
  $('room-name').textContent = state.room;
  $('csv').addEventListener('click', downloadCsv);
  setLink('connecting');
  connect();
  setInterval(render, 1000);
}

async function main() {
  try {
    wasm = await loadTracker();
  } catch (e) {
    showMessage(message, e.message, true);
    return;
  }
  if (state.room && state.token) {
    start();
    return;
  }
  // No token: offer the demo.
  $('demo-start').hidden = false;
  if (state.room) $('demo-room').value = state.room;
  $('demo-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('start').disabled = true;
    try {
      const demo = await api('POST', '/demo/start', null, { room: $('demo-room').value.trim() || 'demo-class' });
      state.room = demo.room;
      state.token = demo.teacher_token;
      state.session = demo.session;
      const url = new URL(location.href);
      url.searchParams.set('room', demo.room);
      url.searchParams.set('token', demo.teacher_token);
      history.replaceState(null, '', url);
      showMessage(message, '');
      start();
    } catch (e) {
      $('start').disabled = false;
      showMessage(message, 'Demo mode is not available (start the server with --demo). ' + e.message, true);
    }
  });
  $('demo-room').addEventListener('input', () => {
    $('student-link').href = `meeting.html?room=${encodeURIComponent($('demo-room').value.trim())}`;
  });
}

main();
