// Small helpers shared by meeting.js and dashboard.js.

/** Query parameters of the page. */
export const params = new URLSearchParams(location.search);

/** Loads the wasm tracker module (built by scripts/build-tracker.sh). */
export async function loadTracker() {
  try {
    const mod = await import('./pkg/attendance_tracker.js');
    await mod.default();
    return mod;
  } catch (e) {
    throw new Error('The attendance tracker is not built (run scripts/build-tracker.sh): ' + e.message);
  }
}

/** fetch + JSON with an optional bearer token; throws with the server's message. */
export async function api(method, path, token, body) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const message = (data && (data.message || data.error)) || text || res.statusText;
    throw new Error(`${method} ${path}: ${res.status} ${message}`);
  }
  return data;
}

/** The payload of a JWT (no verification: that is the server's job). */
export function jwtClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(
      Array.from(atob(part), (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''),
    );
    return JSON.parse(json);
  } catch {
    return {};
  }
}

/** MM:SS under an hour, H:MM:SS from an hour on. */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor(s / 60) % 60).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** A percentage as the rules give it (already rounded to one decimal): `25.0%`. */
export const percent = (p) => `${(p || 0).toFixed(1)}%`;

/** HH:MM of an RFC 3339 time, in `timeZone` (IANA) or the browser's zone. */
export function hhmm(iso, timeZone) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false, timeZone });
}

export function dateLabel(iso, timeZone) {
  if (!iso) return '';
  return new Date(iso).toLocaleDateString([], { weekday: 'short', day: 'numeric', month: 'short', timeZone });
}

/** `zone` when this browser knows it, else undefined (the browser's own zone). */
export function knownZone(zone) {
  if (!zone) return undefined;
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return zone;
  } catch {
    return undefined;
  }
}

export function wsUrl(path) {
  const url = new URL(path, location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

export const PHASE_LABEL = { scheduled: 'Not started', live: 'Live', ended: 'Final' };
export const STATUS_LABEL = { present: 'Present', late: 'Late', partial: 'Partial', absent: 'Absent', excused: 'Excused' };

/** Sets text and data-value only when they change. */
export function put(el, text, value) {
  if (!el) return;
  if (el.textContent !== text) el.textContent = text;
  if (value !== undefined && el.dataset.value !== value) el.dataset.value = value;
}

export function showMessage(el, text, isError = false) {
  el.textContent = text || '';
  el.classList.toggle('error', isError);
}
