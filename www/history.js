// One student's history (administrators): one row per lesson they joined,
// were on the roster of, or were corrected in; each opens in the dashboard.
import { api, clock, count, pageLink, pageToken, params, percent, put, showMessage, t, STATUS_LABEL } from './common.js';
import { lessonLabel } from './lessons.js';

const $ = (id) => document.getElementById(id);
const token = pageToken;

function cell(tr, text, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  td.textContent = text;
  tr.append(td);
  return td;
}

async function show(identity, from, to) {
  const query = new URLSearchParams({ identity });
  if (from) query.set('from', from);
  if (to) query.set('to', to);
  let history;
  try {
    history = await api('GET', `api/attendance?${query}`, token);
  } catch (e) {
    showMessage($('message'), t('history.err', { error: e.message }), true);
    return;
  }
  showMessage($('message'), history.sessions.length ? '' : t('history.none', { identity }));
  $('title').textContent = t('history.of', { identity });
  put($('sum-total'), count(history.sessions.length));
  for (const k of ['present', 'late', 'partial', 'absent', 'excused']) put($(`sum-${k}`), count(history.counts[k] || 0));
  $('rows').replaceChildren(...history.sessions.map(({ session, attendance: a }) => {
    const tr = document.createElement('tr');
    tr.dataset.session = session.id;
    cell(tr, lessonLabel(session));
    cell(tr, session.room);
    const status = document.createElement('span');
    status.className = 'badge';
    put(status, (STATUS_LABEL[a.status] || a.status) + (a.override ? t('history.corrected') : ''), a.status);
    cell(tr, '').append(status);
    cell(tr, clock(a.attended_seconds), 'num');
    cell(tr, percent(a.attendance_percentage), 'num');
    cell(tr, count(a.join_count), 'num');
    const open = document.createElement('a');
    open.textContent = t('history.open');
    open.href = pageLink('dashboard.html', { room: session.room, session: session.id }, token);
    cell(tr, '').append(open);
    return tr;
  }));
  $('result').hidden = false;
}

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
if (!token) showMessage($('message'), t('history.token'), true);
else if (params.get('identity')) show(params.get('identity'), params.get('from'), params.get('to'));
