// A teacher's way in: the lessons the page's token may see (an
// administrator's: all; a teacher's: their room's and those they teach by a
// roster), today's, upcoming and past, each with its students per status
// and a link to its live or final report. Used by dashboard.js when the page
// is opened with a token and no room.
import { api, count, dateLabel, hhmm, knownZone, pageLink, showMessage, t, PHASE_LABEL, STATUS_LABEL } from './common.js';

const DAY = 24 * 3600 * 1000;
const STATUSES = ['present', 'late', 'partial', 'absent', 'excused'];
/** How far back the list starts, and how much further each "earlier" goes. */
const BACK_DAYS = 28;
const AHEAD_DAYS = 15;

function element(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Midnight of today in the browser's zone. */
function today() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** One lesson: its name (the link), when and where, its phase, its counts. */
function item(s, token) {
  const zone = knownZone(s.timezone);
  const li = element('li', 'lesson-item');
  li.dataset.session = s.id;
  li.dataset.phase = s.phase;
  const head = element('div', 'lesson-head');
  const link = element('a', 'lesson-link', s.title || (s.unscheduled ? t('lesson.unscheduled') : s.room));
  link.href = pageLink('dashboard.html', { room: s.room, session: s.id }, token);
  const badge = element('span', 'badge', PHASE_LABEL[s.phase] || s.phase);
  badge.dataset.value = s.phase;
  head.append(link, ' ', badge);
  const end = new Date(Date.parse(s.scheduled_at) + (s.lesson_minutes || s.duration_minutes || 0) * 60000).toISOString();
  const when = `${dateLabel(s.scheduled_at, zone)} ${hhmm(s.scheduled_at, zone)}–${hhmm(end, zone)}`;
  const meta = element('p', 'lesson-meta muted small');
  meta.append(element('span', null, when), ' · ', element('span', null, t('room')), ' ');
  meta.append(element('bdi', 'lesson-room', s.room));
  if (zone) meta.append(' · ', element('span', null, zone));
  const counts = element('ul', 'lesson-counts');
  counts.setAttribute('aria-label', t('list.counts'));
  counts.append(element('li', 'muted', t('list.students', { count: count(s.students) })));
  for (const k of STATUSES) {
    const c = element('li');
    c.dataset.status = k;
    const label = element('span', 'badge', STATUS_LABEL[k]);
    label.dataset.value = k;
    c.append(label, ' ', element('strong', null, count((s.counts || {})[k])));
    counts.append(c);
  }
  li.append(head, meta, counts);
  return li;
}

/** Today's by time, upcoming soonest first, past newest first. */
function groups(sessions) {
  const start = today();
  const end = start + DAY;
  const at = (s) => Date.parse(s.scheduled_at);
  const by = (sign) => (x, y) => sign * (at(x) - at(y)) || sign * (x.id - y.id);
  return [
    ['today', sessions.filter((s) => at(s) >= start && at(s) < end).sort(by(1))],
    ['upcoming', sessions.filter((s) => at(s) >= end).sort(by(1))],
    ['past', sessions.filter((s) => at(s) < start).sort(by(-1))],
  ];
}

/** Shows the list in `section`; errors in `message`. */
export function showClasses(token, section, message) {
  section.hidden = false;
  const list = section.querySelector('#class-groups');
  const range = section.querySelector('#class-range');
  const earlier = section.querySelector('#earlier');
  let back = BACK_DAYS;
  async function load() {
    const from = new Date(today() - back * DAY);
    const to = new Date(today() + AHEAD_DAYS * DAY);
    const query = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
    let answer;
    try {
      answer = await api('GET', `api/sessions?${query}`, token);
    } catch (e) {
      showMessage(message, t(e.status === 403 ? 'list.forbidden' : 'list.err', { error: e.message }), true);
      earlier.hidden = true;
      return;
    }
    showMessage(message, '');
    range.textContent = t('list.range', { from: dateLabel(from.toISOString()), to: dateLabel(new Date(to - DAY).toISOString()) });
    const sessions = (answer && answer.sessions) || [];
    const parts = [];
    for (const [key, items] of groups(sessions)) {
      if (!items.length) continue;
      const group = element('section', 'lesson-group');
      group.setAttribute('aria-labelledby', `group-${key}`);
      const h = element('h2', null, t(`list.${key}`));
      h.id = `group-${key}`;
      const ul = element('ul', 'lesson-list');
      ul.dataset.group = key;
      ul.append(...items.map((s) => item(s, token)));
      group.append(h, ul);
      parts.push(group);
    }
    if (!parts.length) parts.push(element('p', 'empty', t('list.none')));
    list.replaceChildren(...parts);
    earlier.hidden = false;
  }
  earlier.addEventListener('click', async () => {
    back += BACK_DAYS;
    earlier.disabled = true;
    await load();
    earlier.disabled = false;
    earlier.focus();
  });
  return load();
}
