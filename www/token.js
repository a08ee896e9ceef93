// The page's token, out of the address bar before anything else runs (this
// module has no dependencies and is imported first).

/**
 * The page's token, taken out of the address bar at once: from the fragment
 * (`#token=…`, never sent to the server) or, for old links, the query string
 * (`?token=…`). It is kept in sessionStorage for this tab (per page and room)
 * so a reload still works, and never stays in the history or copied links.
 */
function takeToken() {
  const url = new URL(location.href);
  const hash = new URLSearchParams(url.hash.slice(1));
  const given = hash.get('token') || url.searchParams.get('token') || '';
  const key = `attendance-token:${url.pathname}:${url.searchParams.get('room') || ''}`;
  if (hash.has('token') || url.searchParams.has('token')) {
    hash.delete('token');
    url.searchParams.delete('token');
    const rest = hash.toString();
    url.hash = rest ? `#${rest}` : '';
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
  }
  try {
    if (given) sessionStorage.setItem(key, given);
    return given || sessionStorage.getItem(key) || '';
  } catch {
    return given;
  }
}

/** The page's token (see takeToken); never read it from the URL elsewhere. */
export const pageToken = takeToken();

/** Keeps `token` for this page and room (after a demo start, say). */
export function keepToken(room, token) {
  try {
    sessionStorage.setItem(`attendance-token:${location.pathname}:${room}`, token);
  } catch { /* private mode: only this load has it */ }
}

