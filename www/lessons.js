// Lessons, not rooms: which lesson of the room a page shows (`?session=ID`,
// else the room's current one: the lesson on now, else the next, else the
// most recent) and a picker of the room's lessons. Used by dashboard.js.
import { api, dateLabel, hhmm, knownZone, params, t } from './common.js';

/** The lesson id picked in the page's address, or '' for the current one. */
export const lessonId = () => params.get('session') || '';

/** `path` for the lesson shown: `session=ID` added when one was picked. */
export function forLesson(path) {
  const id = lessonId();
  if (!id) return path;
  return `${path}${path.includes('?') ? '&' : '?'}session=${encodeURIComponent(id)}`;
}

/** "Mon 17 Nov 09:00 · Algebra", or "… · Unscheduled meeting". */
export function lessonLabel(s) {
  const zone = knownZone(s.timezone);
  const what = s.unscheduled ? t('lesson.unscheduled') : (s.title || t('lesson.one'));
  return `${dateLabel(s.scheduled_at, zone)} ${hhmm(s.scheduled_at, zone)} · ${what}`;
}

/** Fills `select` with the room's lessons; picking one opens it. */
export async function mountLessonPicker(select, room, token, shownId) {
  let list;
  try {
    list = await api('GET', `api/sessions?room=${encodeURIComponent(room)}`, token);
  } catch {
    return; // the picker is a convenience: the page works without it
  }
  const sessions = (list && list.sessions) || [];
  const current = new Option(t('lesson.current'), '');
  const options = [current, ...sessions.slice().reverse().map((s) => new Option(lessonLabel(s), String(s.id)))];
  select.replaceChildren(...options);
  select.value = lessonId() || '';
  if (!lessonId() && shownId != null) current.textContent = t('lesson.current.is', {
    lesson: lessonLabel(sessions.find((s) => s.id === shownId) || { scheduled_at: null }),
  });
  select.closest('label').hidden = sessions.length === 0;
  select.addEventListener('change', () => {
    const url = new URL(location.href);
    if (select.value) url.searchParams.set('session', select.value);
    else url.searchParams.delete('session');
    location.assign(url);
  });
}
