// Small helpers shared by meeting.js and dashboard.js.
import { keepToken, pageToken } from './token.js';
import { locale, t } from './i18n.js';

export { keepToken, locale, pageToken, t };

/** Query parameters of the page (without the token: see pageToken). */
export const params = new URLSearchParams(location.search);

/**
 * A link to another page of the service with the token in its fragment:
 * `pageLink('dashboard.html', { room }, token)`.
 */
export function pageLink(page, query, token) {
  const url = new URL(page, location.href);
  for (const [k, v] of Object.entries(query || {})) url.searchParams.set(k, v);
  if (token) url.hash = new URLSearchParams({ token }).toString();
  return url.toString();
}

/** The service's base URL (where the pages are served), with a trailing slash. */
export const baseUrl = () => new URL('.', location.href).href;

/** `path` of the service (e.g. `api/sessions/x`), relative to where the page is served. */
export const serviceUrl = (path) => new URL(path.replace(/^\/+/, ''), baseUrl()).href;

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
  const res = await fetch(serviceUrl(path), {
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
    const error = new Error(`${res.status} ${message}`);
    error.status = res.status;
    throw error;
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

const digits2 = new Intl.NumberFormat(locale, { minimumIntegerDigits: 2, useGrouping: false });
const digits = new Intl.NumberFormat(locale, { useGrouping: false });

/** MM:SS under an hour, H:MM:SS from an hour on (in the locale's digits). */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(s / 3600);
  const mm = digits2.format(Math.floor(s / 60) % 60);
  const ss = digits2.format(s % 60);
  return h > 0 ? `${digits.format(h)}:${mm}:${ss}` : `${mm}:${ss}`;
}

const percentFormat = new Intl.NumberFormat(locale, { style: 'percent', minimumFractionDigits: 1, maximumFractionDigits: 1 });
/** A percentage as the rules give it (already rounded to one decimal), e.g. `25.0%`. */
export const percent = (p) => percentFormat.format((p || 0) / 100);

/** A count in the locale's digits. */
export const count = (n) => digits.format(n || 0);

/** HH:MM of an RFC 3339 time, in `timeZone` (IANA) or the browser's zone. */
export function hhmm(iso, timeZone) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit', hour12: false, timeZone });
}

export function dateLabel(iso, timeZone) {
  if (!iso) return '';
  return new Date(iso).toLocaleDateString(locale, { weekday: 'short', day: 'numeric', month: 'short', timeZone });
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
  const url = new URL(serviceUrl(path));
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

export const PHASE_LABEL = Object.fromEntries(['scheduled', 'live', 'ended'].map((k) => [k, t(`phase.${k}`)]));
export const STATUS_LABEL = Object.fromEntries(
  ['present', 'late', 'partial', 'absent', 'excused'].map((k) => [k, t(`status.${k}`)]),
);

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
