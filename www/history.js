// One student's history (administrators): one row per lesson they joined,
// were on the roster of, or were corrected in; each opens in the dashboard.
import { api, clock, params, percent, put, showMessage, STATUS_LABEL } from './common.js';
import { lessonLabel } from './lessons.js';

const $ = (id) => document.getElementById(id);
const token = params.get('token') || '';

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
    history = await api('GET', `/api/attendance?${query}`, token);
  } catch (e) {
    showMessage($('message'), `Could not read the history: ${e.message}`, true);
    return;
  }
  showMessage($('message'), history.sessions.length ? '' : `No lesson of ${identity} in this range.`);
  $('title').textContent = `History of ${identity}`;
  put($('sum-total'), String(history.sessions.length));
  for (const k of ['present', 'late', 'partial', 'absent', 'excused']) put($(`sum-${k}`), String(history.counts[k] || 0));
  $('rows').replaceChildren(...history.sessions.map(({ session, attendance: a }) => {
    const tr = document.createElement('tr');
    tr.dataset.session = session.id;
    cell(tr, lessonLabel(session));
    cell(tr, session.room);
    const status = document.createElement('span');
    status.className = 'badge';
    put(status, (STATUS_LABEL[a.status] || a.status) + (a.override ? ' (corrected)' : ''), a.status);
    cell(tr, '').append(status);
    cell(tr, clock(a.attended_seconds), 'num');
    cell(tr, percent(a.attendance_percentage), 'num');
    cell(tr, String(a.join_count), 'num');
    const open = document.createElement('a');
    open.textContent = 'Open';
    open.href = `dashboard.html?${new URLSearchParams({ room: session.room, session: session.id, token })}`;
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
if (!token) showMessage($('message'), 'Open this page with ?token=ADMIN_TOKEN (an administrator token).', true);
else if (params.get('identity')) show(params.get('identity'), params.get('from'), params.get('to'));
