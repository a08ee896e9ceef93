// The teacher dashboard: one WebSocket for the room, every row ticked once per
// second with the wasm build of the attendance rules: computeAttendance for the
// figures and statuses, timeline for the window, its thresholds and the cycles
// clipped to it, countStatuses for the summary. This file only formats and
// draws what they return.
import {
  api, clock, dateLabel, hhmm, keepToken, knownZone, loadTracker, pageLink, pageToken, params, percent, put,
  serviceUrl, showMessage, t, count, locale, wsUrl, PHASE_LABEL, STATUS_LABEL,
} from './common.js';
import { LiveLink } from './connection.js';
import { forLesson, lessonLabel, mountLessonPicker } from './lessons.js';
import { showClasses } from './classes.js';

const $ = (id) => document.getElementById(id);
const message = $('message');
const SVG = 'http://www.w3.org/2000/svg';

const state = {
  room: params.get('room') || '',
  token: pageToken,
  session: null,
  // identity -> server participant object; its `role` (student, teacher,
  // excluded) says which list it is shown in.
  participants: new Map(),
  offsetMs: 0, // server clock - browser clock
  rows: new Map(), // identity -> { tr, cells, timelineKey }
  order: { rows: '', 'teacher-rows': '', excluded: '' },
};
let wasm = null;

/** Server time now, or, while the numbers are not current, when they last were. */
const now = () => {
  const browser = link.stale && link.since !== null ? Math.min(Date.now(), link.since) : Date.now();
  return browser + state.offsetMs;
};
const ms = (iso) => (iso ? Date.parse(iso) : NaN);

function setServerTime(iso) {
  const t = ms(iso);
  if (Number.isFinite(t)) state.offsetMs = t - Date.now();
}

const hm = (msBrowser) => new Date(msBrowser + state.offsetMs).toLocaleTimeString(locale, {
  hour: '2-digit', minute: '2-digit', hour12: false, timeZone: zone(),
});

const LINK_LABEL = Object.fromEntries(['connecting', 'live', 'reconnecting', 'polling', 'offline', 'expired']
  .map((k) => [k, (since) => t(`link.${k}`, { since })]));

/** The connection badge and, while the numbers are not current, a notice saying so. */
function showLink() {
  const since = link.since ? hm(link.since) : '';
  put($('link'), LINK_LABEL[link.state](since), link.state);
  const stale = link.stale && link.since !== null;
  $('class').classList.toggle('stale', stale);
  put($('stale'), stale
    ? t('stale', { since }) : '');
  // An error about reaching the service ends when the service is reached again.
  if (!link.stale && message.dataset.kind === 'connection') clearMessage();
  // Frozen (or thawed) at once, not at the next tick.
  if (stale !== showLink.stale) {
    showLink.stale = stale;
    if (state.session) render();
  }
}

function clearMessage() {
  showMessage(message, '');
  delete message.dataset.kind;
}

// ---- server connection: WebSocket with backoff, polling after 3 failures ----
const link = new LiveLink({
  // The token travels as a subprotocol, never in the URL; ?session=ID pins a lesson.
  socketUrl: () => wsUrl(forLesson(`api/sessions/${encodeURIComponent(state.room)}/live`)),
  protocols: () => ['attendance.v1', `access_token.${state.token}`],
  poll: pollOnce,
  onMessage,
  onState: () => showLink(),
});

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
      showMessage(message, msg.message || t('err.server'), true);
      message.dataset.kind = 'server';
      return;
    default:
      return;
  }
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

/** One HTTP refresh (the fallback when the live socket keeps failing). */
async function pollOnce() {
  const room = encodeURIComponent(state.room);
  try {
    const [session, report] = await Promise.all([
      api('GET', forLesson(`api/sessions/${room}`), state.token),
      api('GET', forLesson(`api/sessions/${room}/attendance`), state.token),
    ]);
    if (link.ws && link.ws.readyState === WebSocket.OPEN && link.state === 'live') return;
    if (report && report.server_time) setServerTime(report.server_time);
    state.session = session;
    state.participants = byIdentity(report);
    if (message.dataset.kind === 'connection') clearMessage();
    render();
  } catch (e) {
    showMessage(message, t('err.reach', { error: e.message }), true);
    message.dataset.kind = 'connection';
    throw e;
  }
}

// ---- rendering ----
/** The session's IANA zone when it has one (and this browser knows it). */
const zone = () => knownZone(state.session && state.session.timezone);
const time = (iso) => hhmm(iso, zone());

function zoneLabel() {
  const tz = zone();
  if (tz) return t('zone.session', { zone: tz });
  const own = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return own ? t('zone.own', { zone: own }) : t('zone.own.unknown');
}

/** Date and time of an instant in the session's zone, e.g. "25 Nov, 12:05". */
function when(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleString(locale, {
    day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', hour12: false, timeZone: zone(),
  });
}

/** The session's window, phase and thresholds from the rules (null: none). */
function renderSession() {
  const s = state.session;
  $('room-name').textContent = state.room;
  let w = null;
  try { w = s && wasm.timeline(s, null, now()); } catch { /* unreadable: as if none */ }
  if (!w) {
    put($('phase'), t('phase.none'), 'none');
    return null;
  }
  $('title').textContent = s.title || (s.unscheduled ? t('lesson.unscheduled.title', { room: s.room }) : `${t('dash.h1')} · ${s.room}`);
  document.title = `${s.title || s.room} · ${t('dash.h1')}`;
  put($('lesson'), s.unscheduled ? t('lesson.unscheduled.note', { lesson: lessonLabel(s) }) : '');
  $('lesson').hidden = !s.unscheduled;
  if (!state.picker) state.picker = mountLessonPicker($('lessons'), state.room, state.token, s.id);
  const meta = `· ${dateLabel(w.start, zone())} ${time(w.start)}–${time(w.class_end)}` +
    (w.window_end !== w.class_end ? t('window.grace', { time: time(w.window_end) }) : '');
  put($('window'), meta);
  put($('zone'), zoneLabel());
  put($('window-range'), t('legend.range', { from: time(w.start), to: time(w.window_end) }));
  put($('teacher-threshold'), s.teacher_present_percent != null
    ? t('teacher.threshold', { teacher: count(w.teacher_present_percent), students: count(w.present_percent) }) : '');
  put($('phase'), PHASE_LABEL[w.phase] || w.phase, w.phase);
  return w;
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
  const guest = element('span', 'tag guest', t('guest'));
  guest.title = t('guest.title');
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
  const marker = element('span', 'corrected', t('row.corrected'));
  marker.dataset.field = 'override';
  marker.hidden = true;
  const detail = element('div', 'correction');
  detail.dataset.field = 'override-detail';
  detail.hidden = true;
  // The correction's details and its removal live with the status.
  const remove = element('button', 'small link', t('row.remove'));
  remove.type = 'button';
  remove.dataset.action = 'remove';
  remove.hidden = true;
  // Who can no longer reach present, and who must rejoin by when (the rules' stayUntil).
  const reach = element('div', 'reach');
  reach.dataset.field = 'reach';
  reach.hidden = true;
  cell(tr, 'status').append(status, ' ', marker, reach, detail, remove);
  const joins = cell(tr, 'num');
  joins.dataset.field = 'join-count';
  const media = mediaCells(tr);
  const timeline = cell(tr, 'timeline');
  const correct = element('button', 'small secondary', t('row.correct'));
  correct.type = 'button';
  correct.dataset.action = 'correct';
  cell(tr, 'row-actions').append(correct);
  correct.addEventListener('click', () => openCorrection(identity, 'set', correct));
  remove.addEventListener('click', () => openCorrection(identity, 'remove', remove));
  const row = {
    tr, name, guest, id, inMeeting, attended, pct, status, marker, reach, detail, joins, media, timeline, correct, remove,
    timelineKey: '',
  };
  state.rows.set(identity, row);
  return row;
}

/** Draws the participant's cycles as the rules clip them to the window. */
function drawTimeline(row, p) {
  let tl;
  try { tl = wasm.timeline(state.session, p, now()); } catch { return; }
  // The rules give positions as fractions of the window; the drawing is 1000 wide.
  const x = (fraction) => fraction * 1000;
  const parts = tl.segments.map((q) => ({
    x1: x(q.x1), x2: x(q.x2), open: q.open, label: `${time(q.joined_at)}–${q.open ? 'now' : time(q.left_at)}`,
  }));
  const nowX = tl.now_x === null ? -1 : x(tl.now_x);
  const key = parts.map((q) => `${q.x1.toFixed(1)}-${q.x2.toFixed(1)}${q.open ? 'o' : ''}${q.label}`).join(',') + `|${nowX.toFixed(1)}`;
  if (key === row.timelineKey) return;
  row.timelineKey = key;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 1000 20');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', parts.length
    ? t('tl.in', { ranges: parts.map((q) => q.label).join(', ') })
    : t('tl.none'));
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
  rect(0, x(tl.class_end_x), 'track');
  if (tl.class_end_x < 1) rect(x(tl.class_end_x), 1000, 'grace', t('legend.grace'));
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
const lower = (text) => text.toLocaleLowerCase(locale);
const displayName = (p) => p.name || p.identity;

/** The participant as of now: the tracker's rules with their own threshold and override. */
function current(p) {
  if (!state.session) return p;
  try { return wasm.computeAttendance(state.session, p, now()); } catch { return p; }
}

/** The rules' best status still reachable, as a short note: [kind, text] ('' when nothing to say). */
function reachNote(p, a) {
  if (!state.session || a.final || a.override || p.role === 'excluded') return ['', ''];
  let stay;
  try { stay = wasm.stayUntil(state.session, p, now()); } catch { return ['', '']; }
  if (!stay || !stay.reachable_status) return ['', ''];
  if (stay.reachable_status === 'partial') return ['unreachable', t('reach.unreachable')];
  if (!a.in_meeting && stay.rejoin_by) {
    return ['rejoin', t('reach.rejoin', { time: time(stay.rejoin_by), status: lower(label(stay.reachable_status)) })];
  }
  if (stay.reachable_status === 'late' && a.status !== 'late') return ['unreachable', t('reach.late')];
  return ['', ''];
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
  const kind = never ? 'never' : a.in_meeting ? 'yes' : a.heartbeat_stale ? 'stale' : 'no';
  const presence = [kind, t(`presence.${kind}`)];
  put(row.inMeeting, presence[1], presence[0]);
  put(row.attended, clock(a.attended_seconds));
  put(row.pct, percent(a.attendance_percentage));
  put(row.status, label(a.status) + (a.final ? t('row.final') : ''), a.status);
  const o = a.override || p.override || null;
  row.tr.classList.toggle('overridden', !!o);
  row.marker.hidden = !o;
  row.detail.hidden = !o;
  row.remove.hidden = !o;
  if (o) {
    const detail = t('override.detail', { computed: lower(label(a.computed_status)), reason: o.reason, author: o.author, when: when(o.at) });
    put(row.detail, detail);
    const tip = t('override.tip', { author: o.author, when: when(o.at), computed: label(a.computed_status), reason: o.reason });
    if (row.marker.title !== tip) row.marker.title = tip;
    if (row.detail.title !== tip) row.detail.title = tip;
  }
  const correctLabel = t('correct.aria', { name });
  if (row.correct.getAttribute('aria-label') !== correctLabel) {
    row.correct.setAttribute('aria-label', correctLabel);
    // The accessible name starts with the visible label (WCAG 2.5.3).
    row.remove.setAttribute('aria-label', t('remove.aria', { name }));
  }
  put(row.joins, count(a.join_count ?? (p.cycles || []).length));
  renderMedia(row, a);
  const reach = reachNote(p, a);
  row.reach.hidden = !reach[0];
  put(row.reach, reach[1], reach[0]);
  if (w) drawTimeline(row, p);
  return row;
}

/**
 * Puts `list`'s rows into the tbody `id` in order, moving only the rows out
 * of place (nothing when the order is unchanged); keyboard focus stays put.
 */
function place(id, list) {
  const order = list.map((p) => p.identity).join('\n');
  if (order === state.order[id]) return;
  state.order[id] = order;
  const tbody = $(id);
  const focused = document.activeElement;
  const want = list.map((p) => state.rows.get(p.identity).tr);
  const keep = new Set(want);
  for (const tr of [...tbody.children]) if (!keep.has(tr)) tr.remove();
  let at = tbody.firstElementChild;
  for (const tr of want) {
    if (tr === at) at = at.nextElementSibling;
    else tbody.insertBefore(tr, at);
  }
  if (focused && focused !== document.activeElement && focused.isConnected) focused.focus({ preventScroll: true });
}

// ---- camera, microphone and screen-share time: columns a teacher may hide ----
const MEDIA = [['camera_seconds', 'col.camera'], ['microphone_seconds', 'col.microphone'], ['screen_share_seconds', 'col.screen']];
const MEDIA_KEY = 'attendance-media-columns';

/** The three media cells of a row; each names itself where the headers are hidden (phones). */
function mediaCells(tr) {
  return MEDIA.map(([field, label]) => {
    const td = cell(tr, 'num media-col');
    td.dataset.field = field.replace(/_/g, '-');
    const name = element('span', 'cell-label', t(label));
    const value = element('span', 'cell-value');
    td.append(name, ' ', value);
    return value;
  });
}

function renderMedia(row, a) {
  MEDIA.forEach(([field], i) => put(row.media[i], Number.isFinite(a[field]) ? clock(a[field]) : '–'));
}

/** The teacher's choice (kept in this browser), else shown from laptop width up and hidden on a phone. */
function mediaWanted() {
  let saved = null;
  try { saved = localStorage.getItem(MEDIA_KEY); } catch { /* private mode */ }
  if (saved === 'on' || saved === 'off') return saved === 'on';
  return !matchMedia('(max-width: 40rem)').matches;
}

/** Columns only where the service reports media time for this lesson (engagement on), and wanted. */
function showMediaColumns(all) {
  const reported = state.session?.engagement !== false && all.some((p) => Number.isFinite(p.camera_seconds));
  $('media-toggle').hidden = !reported;
  const box = $('media-columns');
  if (!showMediaColumns.bound) {
    showMediaColumns.bound = true;
    box.checked = mediaWanted();
    box.addEventListener('change', () => {
      try { localStorage.setItem(MEDIA_KEY, box.checked ? 'on' : 'off'); } catch { /* this page only */ }
      render();
    });
  }
  const shown = reported && box.checked;
  for (const id of ['students', 'teachers']) $(id).classList.toggle('with-media', shown);
}

// ---- sorting, filtering, search ----
const STATUS_ORDER = { absent: 0, partial: 1, late: 2, present: 3, excused: 4 };
const view = { query: '', filter: 'all', sort: 'name' };

const FILTERS = {
  all: () => true,
  'not-present': (p, a) => a.status !== 'present' && a.status !== 'excused',
  'not-in-meeting': (p, a) => !a.in_meeting,
  'in-meeting': (p, a) => !!a.in_meeting,
  unreachable: (p, a, r) => r === 'unreachable',
  rejoin: (p, a, r) => r === 'rejoin',
  present: (p, a) => a.status === 'present',
  late: (p, a) => a.status === 'late',
  partial: (p, a) => a.status === 'partial',
  absent: (p, a) => a.status === 'absent',
  excused: (p, a) => a.status === 'excused',
  guests: (p) => isGuest(p),
};

const byName = (x, y) => displayName(x.p).localeCompare(displayName(y.p)) || x.p.identity.localeCompare(y.p.identity);
const SORTS = {
  name: byName,
  status: (x, y) => (STATUS_ORDER[x.a.status] ?? 9) - (STATUS_ORDER[y.a.status] ?? 9) || byName(x, y),
  'attended-asc': (x, y) => (x.a.attended_seconds || 0) - (y.a.attended_seconds || 0) || byName(x, y),
  'attended-desc': (x, y) => (y.a.attended_seconds || 0) - (x.a.attended_seconds || 0) || byName(x, y),
};

const fold = (text) => text.normalize('NFKD').replace(/\p{M}/gu, '').toLocaleLowerCase();

function matches(p) {
  if (!view.query) return true;
  return fold(`${displayName(p)} ${p.identity}`).includes(view.query);
}

const isGuest = (p) => p.role === 'student' && !!state.session?.has_roster && p.rostered === false;

function setupToolbar() {
  const apply = () => {
    view.query = fold($('search').value.trim());
    view.filter = FILTERS[$('filter').value] ? $('filter').value : 'all';
    view.sort = SORTS[$('sort').value] ? $('sort').value : 'name';
    render();
  };
  $('search').addEventListener('input', apply);
  $('filter').addEventListener('change', apply);
  $('sort').addEventListener('change', apply);
  $('toolbar').addEventListener('submit', (e) => e.preventDefault());
}

// ---- announcements: a student's status changing, nothing else ----
const announced = new Map(); // identity -> status last seen
function announceChanges(items) {
  const changes = [];
  for (const { p, a } of items) {
    const before = announced.get(p.identity);
    announced.set(p.identity, a.status);
    if (before !== undefined && before !== a.status) changes.push(t('announce.one', { name: displayName(p), status: lower(label(a.status)) }));
  }
  if (!changes.length) return;
  const text = changes.length <= 3 ? `${changes.join('; ')}.` : t('announce.many', { count: count(changes.length) });
  put($('announcer'), text);
}

const KIND_LABEL = {
  EGRESS: t('kind.EGRESS'), INGRESS: t('kind.INGRESS'), SIP: t('kind.SIP'), AGENT: t('kind.AGENT'),
  STANDARD: t('kind.observer'), '': t('kind.observer'),
};

function renderExcluded(list) {
  $('excluded').hidden = list.length === 0;
  put($('excluded-count'), count(list.length));
  put($('excluded-what'), list.length === 1 ? t('excluded.one') : t('excluded.many'));
  const key = list.map((p) => `${p.identity}|${p.name}|${p.kind}|${p.join_count}|${p.in_meeting}`).join('\n');
  if (key === state.order.excluded) return;
  state.order.excluded = key;
  $('excluded-list').replaceChildren(...list.map((p) => {
    const li = element('li');
    li.dataset.identity = p.identity;
    li.append(element('strong', null, displayName(p)));
    if (p.name && p.name !== p.identity) li.append(' ', element('span', 'muted', p.identity));
    const what = [KIND_LABEL[p.kind] || (p.kind ? p.kind.toLowerCase() : t('kind.observer'))];
    if (p.in_meeting) what.push(t('excluded.in-room'));
    const first = (p.cycles || []).find((c) => c.joined_at);
    if (first) what.push(t('excluded.joined', { time: time(first.joined_at) }));
    li.append(' ', element('span', 'tag', what[0]), ' ', element('span', 'muted small', what.slice(1).join(' · ')),
      ' ', element('span', 'tag muted', t('excluded.not-counted')));
    return li;
  }));
}

function render() {
  const w = renderSession();
  $('class').hidden = false;
  $('csv').disabled = !state.session;
  const all = [...state.participants.values()];
  const students = all.filter((p) => (p.role || 'student') === 'student');
  const teachers = all.filter((p) => p.role === 'teacher')
    .sort((x, y) => displayName(x).localeCompare(displayName(y)));
  const excluded = all.filter((p) => p.role === 'excluded')
    .sort((x, y) => displayName(x).localeCompare(displayName(y)));
  // Every student as of now, by the rules; guests (not on the roster) apart.
  const items = students.map((p) => ({ p, a: current(p) }));
  const enrolled = items.filter(({ p }) => !isGuest(p));
  const guests = items.filter(({ p }) => isGuest(p));
  const filter = FILTERS[view.filter];
  const shown = items.filter((it) => matches(it.p) && (view.filter === 'all' || filter(it.p, it.a, reachNote(it.p, it.a)[0])))
    .sort(SORTS[view.sort]);
  // Only the rows on screen are drawn; the others wait until they are shown.
  for (const { p, a } of shown) renderRow(p, a, w);
  const totals = wasm.countStatuses(enrolled.map(({ a }) => a.status));
  for (const p of teachers) renderRow(p, current(p), w);
  for (const [identity, row] of state.rows) {
    const p = state.participants.get(identity);
    if (!p || p.role === 'excluded') {
      row.tr.remove();
      state.rows.delete(identity);
    }
  }
  place('rows', shown.map(({ p }) => p));
  place('teacher-rows', teachers);
  $('teachers-wrap').hidden = teachers.length === 0;
  renderExcluded(excluded);
  $('toolbar').hidden = students.length === 0;
  showMediaColumns(all);
  put($('shown-count'), shown.length === students.length
    ? t('shown.all', { count: count(students.length) })
    : t('shown.some', { shown: count(shown.length), total: count(students.length) }));
  put($('empty'), students.length === 0 ? t('empty.none') : t('empty.nomatch'));
  $('empty').hidden = shown.length > 0;
  const s = state.session;
  const never = students.filter((p) => p.never_joined).length;
  const notes = [];
  if (s?.has_roster) notes.push(t('roster.from') + (never ? t('roster.never', { count: count(never) }) : ''));
  if (guests.length) notes.push(guests.length === 1 ? t('guests.one') : t('guests.many', { count: count(guests.length) }));
  put($('roster-note'), notes.join(', '));
  put($('sum-total'), count(enrolled.length));
  put($('sum-in'), count(enrolled.filter(({ a }) => a.in_meeting).length));
  for (const k of ['present', 'late', 'partial', 'absent', 'excused']) put($(`sum-${k}`), count(totals[k]));
  put($('sum-guests'), count(guests.length));
  put($('sum-teachers'), count(teachers.length));
  $('sum-guests').parentElement.hidden = guests.length === 0;
  $('sum-teachers').parentElement.hidden = teachers.length === 0;
  if (!link.stale) announceChanges(items);
  if (!state.session) {
    showMessage(message, t('no.session', { room: state.room }));
    message.dataset.kind = 'no-session';
  } else if (message.dataset.kind === 'no-session') {
    clearMessage();
  }
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
  $('correct-h').textContent = mode === 'set' ? t('dialog.set') : t('dialog.remove');
  const computed = label(a.computed_status || a.status);
  $('correct-who').textContent = mode === 'set'
    ? t('dialog.who.set', { name, identity, computed }) + (a.override ? t('dialog.who.now', { status: label(a.override.status) }) : '')
    : t('dialog.who.remove', { name, identity, computed });
  $('correct-status-field').hidden = mode !== 'set';
  $('correct-status').value = (a.override && a.override.status) || (a.status === 'absent' ? 'excused' : a.status);
  $('correct-reason').value = '';
  $('correct-save').textContent = mode === 'set' ? t('dialog.save') : t('row.remove');
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
    showError(t('reason.required'));
    $('correct-reason').focus();
    return;
  }
  const { identity, mode } = correction;
  const lesson = state.session ? `?session=${state.session.id}` : '';
  const path = `api/sessions/${encodeURIComponent(state.room)}/attendance/${encodeURIComponent(identity)}/override${lesson}`;
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
      ? t('announce.set', { name, status: lower(label(p.status)) })
      : t('announce.removed', { name, status: lower(label(p.status)) }));
  } catch (e) {
    showError(t('save.failed', { error: e.message }));
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
  // The row may have left the filtered list: then the table itself.
  if (target) target.focus();
  else $('students').focus();
});

async function downloadCsv() {
  const button = $('csv');
  button.disabled = true;
  try {
    // The lesson shown; a byte-order mark so that Excel reads UTF-8.
    const lesson = state.session ? `&session=${state.session.id}` : '';
    const res = await fetch(serviceUrl(`api/sessions/${encodeURIComponent(state.room)}/attendance?format=csv&bom=1${lesson}`), {
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
    showMessage(message, t('csv.failed', { error: e.message }), true);
    message.dataset.kind = 'action';
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
  $('demo-banner').hidden = !state.room.startsWith('demo-');
  // Back to the list of lessons this token may see.
  $('my-classes').href = pageLink('dashboard.html', {}, state.token);
  $('my-classes').hidden = state.room.startsWith('demo-');
  setupToolbar();
  link.start();
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
  // A token and no room: the lessons it may see, each a link.
  if (state.token) {
    $('title').textContent = t('list.h1');
    document.title = t('list.title');
    showClasses(state.token, $('classes'), message);
    return;
  }
  // No token: offer the demo.
  $('demo-start').hidden = false;
  if (state.room) $('demo-room').value = state.room;
  $('demo-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('start').disabled = true;
    try {
      const demo = await api('POST', 'demo/start', null, { room: $('demo-room').value.trim() || 'demo-class' });
      state.room = demo.room;
      state.token = demo.teacher_token;
      state.session = demo.session;
      const url = new URL(location.href);
      url.searchParams.set('room', demo.room);
      url.hash = '';
      history.replaceState(null, '', url);
      keepToken(demo.room, demo.teacher_token);
      clearMessage();
      start();
      $('title').focus();
    } catch (e) {
      $('start').disabled = false;
      showMessage(message, t('demo.unavailable', { error: e.message }), true);
    }
  });
  $('demo-room').addEventListener('input', () => {
    $('student-link').href = pageLink('meeting.html', { room: $('demo-room').value.trim() });
  });
}

main();
