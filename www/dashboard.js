// The teacher dashboard: one WebSocket for the room, every row ticked once per
// second with the wasm build of the attendance rules (computeAttendance).
import {
  api, clock, dateLabel, hhmm, knownZone, loadTracker, params, percent, put, showMessage, wsUrl,
  PHASE_LABEL, STATUS_LABEL,
} from './common.js';
import { forLesson, lessonLabel, mountLessonPicker } from './lessons.js';

const $ = (id) => document.getElementById(id);
const message = $('message');
const SVG = 'http://www.w3.org/2000/svg';

const state = {
  room: params.get('room') || '',
  token: params.get('token') || '',
  session: null,
  // identity -> server participant object; its `role` (student, teacher,
  // excluded) says which list it is shown in.
  participants: new Map(),
  offsetMs: 0, // server clock - browser clock
  rows: new Map(), // identity -> { tr, cells, timelineKey }
  order: { rows: '', 'teacher-rows': '', excluded: '' },
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
  const ws = new WebSocket(wsUrl(forLesson(`/api/sessions/${encodeURIComponent(state.room)}/live?access_token=${encodeURIComponent(state.token)}`)));
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
      state.participants = byIdentity(msg);
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
  $('updated').textContent = `· updated ${new Date().toLocaleTimeString([], { hour12: false, timeZone: zone() })}`;
  render();
}

/** A snapshot's or report's three lists as one map (each entry keeps its role). */
function byIdentity({ participants = [], teachers = [], excluded = [] }) {
  const map = new Map();
  for (const [list, role] of [[participants, 'student'], [teachers, 'teacher'], [excluded, 'excluded']]) {
    for (const p of list) map.set(p.identity, { role, ...p });
  }
  return map;
}

async function pollOnce() {
  const room = encodeURIComponent(state.room);
  try {
    const [session, report] = await Promise.all([
      api('GET', forLesson(`/api/sessions/${room}`), state.token),
      api('GET', forLesson(`/api/sessions/${room}/attendance`), state.token),
    ]);
    if (live.ws && live.ws.readyState === WebSocket.OPEN) return;
    state.session = session;
    state.participants = byIdentity(report);
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
/** The session's IANA zone when it has one (and this browser knows it). */
const zone = () => knownZone(state.session && state.session.timezone);
const time = (iso) => hhmm(iso, zone());

function zoneLabel() {
  const tz = zone();
  if (tz) return `Times in ${tz}`;
  const own = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return `Times in your time zone${own ? ` (${own})` : ''}`;
}

/** Date and time of an instant in the session's zone, e.g. "25 Nov, 12:05". */
function when(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleString([], {
    day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', hour12: false, timeZone: zone(),
  });
}

function renderSession() {
  const s = state.session;
  $('room-name').textContent = state.room;
  if (!s) {
    put($('phase'), 'No session', 'none');
    return null;
  }
  $('title').textContent = s.title || (s.unscheduled ? `Unscheduled meeting in ${s.room}` : `Class ${s.room}`);
  document.title = `${s.title || s.room} · Attendance`;
  put($('lesson'), s.unscheduled ? `${lessonLabel(s)}: nobody scheduled it; times against the meeting's length` : '');
  $('lesson').hidden = !s.unscheduled;
  if (!state.picker) state.picker = mountLessonPicker($('lessons'), state.room, state.token, s.id);
  const start = ms(s.scheduled_at);
  const classEnd = start + s.duration_minutes * 60000;
  const windowEnd = s.window_end ? ms(s.window_end) : classEnd + (s.grace_minutes || 0) * 60000;
  const iso = (t) => new Date(t).toISOString();
  const meta = `· ${dateLabel(s.scheduled_at, zone())} ${time(s.scheduled_at)}–${time(iso(classEnd))}` +
    (s.grace_minutes ? `, counting until ${time(iso(windowEnd))}` : '');
  put($('window'), meta);
  put($('zone'), zoneLabel());
  put($('window-range'), `Timeline: ${time(s.scheduled_at)} to ${time(iso(windowEnd))}`);
  put($('teacher-threshold'), s.teacher_present_percent != null
    ? `· present from ${s.teacher_present_percent} % of the class (students: ${s.present_percent ?? 80} %)` : '');
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

function element(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text) e.textContent = text;
  return e;
}

function makeRow(identity) {
  const tr = document.createElement('tr');
  tr.dataset.identity = identity;
  const who = cell(tr);
  const nameLine = element('div', 'who');
  const name = element('span', 'name');
  const guest = element('span', 'tag guest', 'Guest');
  guest.title = 'Not on the class roster';
  guest.hidden = true;
  nameLine.append(name, ' ', guest);
  const id = element('div', 'id');
  who.append(nameLine, id);
  const inMeeting = element('span', 'badge');
  cell(tr).append(inMeeting);
  const attended = cell(tr, 'num');
  attended.dataset.field = 'attended';
  const pct = cell(tr, 'num');
  pct.dataset.field = 'percentage';
  const status = element('span', 'badge');
  status.dataset.field = 'status';
  const marker = element('span', 'corrected', '✎ corrected');
  marker.dataset.field = 'override';
  marker.hidden = true;
  const detail = element('div', 'correction');
  detail.dataset.field = 'override-detail';
  detail.hidden = true;
  // The correction's details and its removal live with the status.
  const remove = element('button', 'small link', 'Remove correction');
  remove.type = 'button';
  remove.dataset.action = 'remove';
  remove.hidden = true;
  cell(tr, 'status').append(status, ' ', marker, detail, remove);
  const joins = cell(tr, 'num');
  joins.dataset.field = 'join-count';
  const timeline = cell(tr, 'timeline');
  const correct = element('button', 'small secondary', 'Correct…');
  correct.type = 'button';
  correct.dataset.action = 'correct';
  cell(tr, 'row-actions').append(correct);
  correct.addEventListener('click', () => openCorrection(identity, 'set', correct));
  remove.addEventListener('click', () => openCorrection(identity, 'remove', remove));
  const row = {
    tr, name, guest, id, inMeeting, attended, pct, status, marker, detail, joins, timeline, correct, remove,
    timelineKey: '',
  };
  state.rows.set(identity, row);
  return row;
}

function drawTimeline(row, p, w) {
  const t = now();
  const span = w.windowEnd - w.start;
  const x = (at) => Math.max(0, Math.min(1000, ((at - w.start) / span) * 1000));
  const parts = [];
  for (const c of p.cycles || []) {
    if (!c.joined_at) continue;
    const from = ms(c.joined_at);
    const open = !c.left_at;
    const to = open ? Math.min(t, w.windowEnd) : ms(c.left_at);
    const x1 = x(Math.max(from, w.start));
    const x2 = x(Math.min(to, w.windowEnd));
    if (x2 <= x1) continue;
    parts.push({ x1, x2, open, label: `${time(c.joined_at)}–${open ? 'now' : time(c.left_at)}` });
  }
  const nowX = w.phase === 'live' ? x(t) : -1;
  const key = parts.map((q) => `${q.x1.toFixed(1)}-${q.x2.toFixed(1)}${q.open ? 'o' : ''}${q.label}`).join(',') + `|${nowX.toFixed(1)}`;
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

const label = (status) => STATUS_LABEL[status] || status;
const displayName = (p) => p.name || p.identity;

/** The participant as of now: the tracker's rules with their own threshold and override. */
function current(p) {
  if (!state.session) return p;
  try { return wasm.computeAttendance(state.session, p, now()); } catch { return p; }
}

function renderRow(p, a, w) {
  const row = state.rows.get(p.identity) || makeRow(p.identity);
  const name = displayName(p);
  put(row.name, name);
  put(row.id, p.name && p.name !== p.identity ? p.identity : '');
  const guest = p.role === 'student' && !!state.session?.has_roster && p.rostered === false;
  row.guest.hidden = !guest;
  const never = !!p.never_joined;
  row.tr.classList.toggle('never-joined', never);
  const presence = never ? ['never', 'Never joined']
    : a.in_meeting ? ['yes', 'In meeting'] : a.heartbeat_stale ? ['stale', 'Connection lost'] : ['no', 'Not in meeting'];
  put(row.inMeeting, presence[1], presence[0]);
  put(row.attended, clock(a.attended_seconds));
  put(row.pct, percent(a.attendance_percentage));
  put(row.status, label(a.status) + (a.final ? ' · final' : ''), a.status);
  const o = a.override || p.override || null;
  row.tr.classList.toggle('overridden', !!o);
  row.marker.hidden = !o;
  row.detail.hidden = !o;
  row.remove.hidden = !o;
  if (o) {
    const detail = `Was ${label(a.computed_status).toLowerCase()} · “${o.reason}” — ${o.author}, ${when(o.at)}`;
    put(row.detail, detail);
    const tip = `Corrected by ${o.author} on ${when(o.at)}. Computed status: ${label(a.computed_status)}. Reason: ${o.reason}`;
    if (row.marker.title !== tip) row.marker.title = tip;
    if (row.detail.title !== tip) row.detail.title = tip;
  }
  const correctLabel = `Correct the attendance of ${name}`;
  if (row.correct.getAttribute('aria-label') !== correctLabel) {
    row.correct.setAttribute('aria-label', correctLabel);
    row.remove.setAttribute('aria-label', `Remove the correction of ${name}`);
  }
  put(row.joins, String(a.join_count ?? (p.cycles || []).length));
  if (w) drawTimeline(row, p, w);
  return row;
}

/** Puts `rows` into the tbody `id` (only when the order changed). */
function place(id, list) {
  const order = list.map((p) => p.identity).join('\n');
  if (order === state.order[id]) return;
  state.order[id] = order;
  $(id).replaceChildren(...list.map((p) => state.rows.get(p.identity).tr));
}

const KIND_LABEL = {
  EGRESS: 'recorder (egress)', INGRESS: 'stream (ingress)', SIP: 'phone bridge (SIP)', AGENT: 'agent',
  STANDARD: 'observer', '': 'observer',
};

function renderExcluded(list) {
  $('excluded').hidden = list.length === 0;
  put($('excluded-count'), String(list.length));
  put($('excluded-what'), list.length === 1 ? 'recorder, agent or observer' : 'recorders, agents and observers');
  const key = list.map((p) => `${p.identity}|${p.name}|${p.kind}|${p.join_count}|${p.in_meeting}`).join('\n');
  if (key === state.order.excluded) return;
  state.order.excluded = key;
  $('excluded-list').replaceChildren(...list.map((p) => {
    const li = element('li');
    li.dataset.identity = p.identity;
    li.append(element('strong', null, displayName(p)));
    if (p.name && p.name !== p.identity) li.append(' ', element('span', 'muted', p.identity));
    const what = [KIND_LABEL[p.kind] || (p.kind ? p.kind.toLowerCase() : 'observer')];
    if (p.in_meeting) what.push('in the room now');
    const first = (p.cycles || []).find((c) => c.joined_at);
    if (first) what.push(`joined ${time(first.joined_at)}`);
    li.append(' ', element('span', 'tag', what[0]), ' ', element('span', 'muted small', what.slice(1).join(' · ')),
      ' ', element('span', 'tag muted', 'not counted'));
    return li;
  }));
}

function render() {
  const w = renderSession();
  $('class').hidden = false;
  $('csv').disabled = !state.session;
  const totals = { present: 0, late: 0, partial: 0, absent: 0, excused: 0, in: 0 };
  const all = [...state.participants.values()].sort((a, b) => displayName(a).localeCompare(displayName(b)));
  const students = all.filter((p) => (p.role || 'student') === 'student');
  const teachers = all.filter((p) => p.role === 'teacher');
  const excluded = all.filter((p) => p.role === 'excluded');
  for (const p of students) {
    const a = current(p);
    renderRow(p, a, w);
    totals[a.status] = (totals[a.status] || 0) + 1;
    if (a.in_meeting) totals.in += 1;
  }
  for (const p of teachers) renderRow(p, current(p), w);
  for (const [identity, row] of state.rows) {
    const p = state.participants.get(identity);
    if (!p || p.role === 'excluded') {
      row.tr.remove();
      state.rows.delete(identity);
    }
  }
  place('rows', students);
  place('teacher-rows', teachers);
  $('teachers-wrap').hidden = teachers.length === 0;
  renderExcluded(excluded);
  $('empty').hidden = students.length > 0;
  const s = state.session;
  const guests = s?.has_roster ? students.filter((p) => p.rostered === false).length : 0;
  const never = students.filter((p) => p.never_joined).length;
  const notes = [];
  if (s?.has_roster) notes.push(`· from the class roster${never ? `, ${never} never joined` : ''}`);
  if (guests) notes.push(`${guests} guest${guests === 1 ? '' : 's'} not on the roster`);
  put($('roster-note'), notes.join(', '));
  put($('sum-total'), String(students.length));
  put($('sum-in'), String(totals.in));
  for (const k of ['present', 'late', 'partial', 'absent', 'excused']) put($(`sum-${k}`), String(totals[k]));
  if (!state.session) showMessage(message, `No session is scheduled in room ${state.room} yet, and nobody has joined it.`);
  else if (!message.classList.contains('error')) showMessage(message, '');
}

// ---- corrections: a teacher's override of one participant's status ----
const dialog = $('correct');
const correction = { identity: null, mode: 'set', opener: null, busy: false };

function openCorrection(identity, mode, opener) {
  const p = state.participants.get(identity);
  if (!p) return;
  const a = current(p);
  Object.assign(correction, { identity, mode, opener, busy: false });
  const name = displayName(p);
  $('correct-h').textContent = mode === 'set' ? 'Correct attendance' : 'Remove the correction';
  const computed = label(a.computed_status || a.status);
  $('correct-who').textContent = mode === 'set'
    ? `${name} (${identity}) · computed: ${computed}${a.override ? ` · now corrected to ${label(a.override.status)}` : ''}`
    : `${name} (${identity}) goes back to the computed status: ${computed}.`;
  $('correct-status-field').hidden = mode !== 'set';
  $('correct-status').value = (a.override && a.override.status) || (a.status === 'absent' ? 'excused' : a.status);
  $('correct-reason').value = '';
  $('correct-save').textContent = mode === 'set' ? 'Save correction' : 'Remove correction';
  $('correct-save').disabled = false;
  showError('');
  dialog.showModal();
  (mode === 'set' ? $('correct-status') : $('correct-reason')).focus();
}

function showError(text) {
  put($('correct-error'), text);
  $('correct-reason').setAttribute('aria-invalid', text ? 'true' : 'false');
}

function announce(text) {
  showMessage($('feedback'), text);
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => showMessage($('feedback'), ''), 10000);
}

async function submitCorrection(event) {
  event.preventDefault();
  if (correction.busy) return;
  const reason = $('correct-reason').value.trim();
  if (!reason) {
    showError('Please give a reason: it is kept in the audit trail.');
    $('correct-reason').focus();
    return;
  }
  const { identity, mode } = correction;
  const lesson = state.session ? `?session=${state.session.id}` : '';
  const path = `/api/sessions/${encodeURIComponent(state.room)}/attendance/${encodeURIComponent(identity)}/override${lesson}`;
  correction.busy = true;
  $('correct-save').disabled = true;
  try {
    const p = mode === 'set'
      ? await api('PUT', path, state.token, { status: $('correct-status').value, reason })
      : await api('DELETE', `${path}${lesson ? '&' : '?'}reason=${encodeURIComponent(reason)}`, state.token);
    if (p && p.identity) state.participants.set(p.identity, p);
    render();
    dialog.close();
    const name = displayName(p || { identity });
    announce(mode === 'set'
      ? `${name} is now ${label(p.status).toLowerCase()} (corrected).`
      : `Correction removed: ${name} is ${label(p.status).toLowerCase()} again.`);
  } catch (e) {
    showError(`Could not save: ${e.message}`);
    $('correct-save').disabled = false;
  } finally {
    correction.busy = false;
  }
}

$('correct-form').addEventListener('submit', submitCorrection);
$('correct-cancel').addEventListener('click', () => dialog.close());
$('correct-reason').addEventListener('input', () => { if ($('correct-reason').value.trim()) showError(''); });
dialog.addEventListener('close', () => {
  // Back to the button that opened the dialog (or its row's other action).
  const row = state.rows.get(correction.identity);
  const target = [correction.opener, row && row.remove, row && row.correct]
    .find((b) => b && b.isConnected && !b.hidden);
  if (target) target.focus();
});

async function downloadCsv() {
  const button = $('csv');
  button.disabled = true;
  try {
    // The lesson shown; a byte-order mark so that Excel reads UTF-8.
    const lesson = state.session ? `&session=${state.session.id}` : '';
    const res = await fetch(`/api/sessions/${encodeURIComponent(state.room)}/attendance?format=csv&bom=1${lesson}`, {
      headers: { Authorization: 'Bearer ' + state.token, Accept: 'text/csv' },
      cache: 'no-store',
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const blob = await res.blob();
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    const named = /filename\*=UTF-8''([^;]+)/.exec(res.headers.get('content-disposition') || '');
    a.download = named ? decodeURIComponent(named[1]) : `attendance-${state.room}.csv`;
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
