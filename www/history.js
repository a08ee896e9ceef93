// One student's history: one row per lesson they joined, were on the
// roster of, or were corrected in, with totals and their grade from
// attendance. An administrator's token reads anyone's (each lesson opens in
// the dashboard); a student's token reads their own.
import {
  api, clock, count, jwtClaims, pageLink, pageToken, params, percent, put, serviceUrl, showMessage, t, STATUS_LABEL,
} from './common.js';
import { lessonLabel } from './lessons.js';

const $ = (id) => document.getElementById(id);
const token = pageToken;
const claims = jwtClaims(token);
/** An administrator's token (LiveKit's roomCreate or roomList grant). */
const isAdmin = !!(claims.video && (claims.video.roomCreate || claims.video.roomList));
/** Anyone else reads their own history: the token's identity. */
const own = isAdmin ? '' : (claims.sub || '');
let shown = null; // the query shown, for the CSV

function cell(tr, text, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  td.textContent = text;
  tr.append(td);
  return td;
}

function query(identity, from, to) {
  const query = new URLSearchParams({ identity });
  if (from) query.set('from', from);
  if (to) query.set('to', to);
  return query;
}

/** "4 of 6 points" (or nothing graded yet). */
function gradeNote(grade) {
  if (!grade || !grade.max_points) return t('history.grade.none');
  return t('history.grade.of', { points: count(grade.points), max: count(grade.max_points) });
}

async function show(identity, from, to) {
  shown = query(identity, from, to);
  let history;
  try {
    history = await api('GET', `api/attendance?${shown}`, token);
  } catch (e) {
    showMessage($('message'), t('history.err', { error: e.message }), true);
    return;
  }
  showMessage($('message'), history.sessions.length ? '' : t('history.none', { identity }));
  $('title').textContent = t('history.of', { identity });
  put($('sum-total'), count(history.sessions.length));
  const totals = history.totals || history.counts;
  for (const k of ['present', 'late', 'partial', 'absent', 'excused']) put($(`sum-${k}`), count(totals[k] || 0));
  put($('sum-attended'), clock(history.attended_seconds));
  const grade = history.grade || {};
  put($('sum-grade'), grade.percent == null ? '–' : percent(grade.percent));
  const p = history.grade_points || {};
  put($('grade-note'), `${gradeNote(grade)}. ${t('history.grade.rule', {
    present: count(p.present), late: count(p.late), partial: count(p.partial), absent: count(p.absent), excused: count(p.excused),
  })}`);
  $('rows').replaceChildren(...history.sessions.map(({ session, attendance: a, grade: g }) => {
    const tr = document.createElement('tr');
    tr.dataset.session = session.id;
    cell(tr, lessonLabel(session));
    cell(tr, session.room).dir = 'auto';
    const status = document.createElement('span');
    status.className = 'badge';
    put(status, (STATUS_LABEL[a.status] || a.status) + (a.override ? t('history.corrected') : ''), a.status);
    cell(tr, '').append(status);
    cell(tr, clock(a.attended_seconds), 'num');
    cell(tr, percent(a.attendance_percentage), 'num');
    cell(tr, count(a.join_count), 'num');
    const points = cell(tr, g ? t('history.points.of', { points: count(g.points), max: count(g.max_points) }) : '–', 'num');
    points.dataset.field = 'points';
    if (!g) points.title = t('history.not-graded');
    const open = cell(tr, '');
    if (isAdmin) {
      const link = document.createElement('a');
      link.textContent = t('history.open');
      link.href = pageLink('dashboard.html', { room: session.room, session: session.id }, token);
      open.append(link);
    }
    return tr;
  }));
  $('result').hidden = false;
}

async function downloadCsv() {
  const button = $('csv');
  if (!shown) return;
  button.disabled = true;
  showMessage($('csv-error'), '');
  try {
    // A byte-order mark so that Excel reads UTF-8.
    const res = await fetch(serviceUrl(`api/attendance?${shown}&format=csv&bom=1`), {
      headers: { Authorization: 'Bearer ' + token, Accept: 'text/csv' },
      cache: 'no-store',
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const a = document.createElement('a');
    a.href = URL.createObjectURL(await res.blob());
    const named = /filename\*=UTF-8''([^;]+)/.exec(res.headers.get('content-disposition') || '');
    a.download = named ? decodeURIComponent(named[1]) : 'attendance.csv';
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } catch (e) {
    showMessage($('csv-error'), t('csv.failed', { error: e.message }), true);
  } finally {
    button.disabled = false;
  }
}

$('csv').addEventListener('click', downloadCsv);

$('form').addEventListener('submit', (event) => {
  event.preventDefault();
  const url = new URL(location.href);
  for (const key of ['identity', 'from', 'to']) {
    const value = $(key).value.trim();
    if (value) url.searchParams.set(key, value);
    else url.searchParams.delete(key);
  }
  history.replaceState(null, '', url);
  show($('identity').value.trim(), $('from').value, $('to').value);
});

for (const key of ['identity', 'from', 'to']) $(key).value = params.get(key) || '';
if (own) {
  // A student's own history: their identity, not to be changed.
  $('identity').value = own;
  $('identity').readOnly = true;
}
const identity = own || params.get('identity');
if (!token) showMessage($('message'), t('history.token'), true);
else if (identity) show(identity, params.get('from'), params.get('to'));
