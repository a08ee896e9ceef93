// The student page: the wasm tracker, driven by a LiveKit room (?livekit=&token=)
// or by the demo endpoints of a server started with --demo.
import {
  api, baseUrl, clock, count, jwtClaims, keepToken, loadTracker, pageLink, pageToken, params, percent, put, showMessage,
  dateLabel, hhmm, t,
} from './common.js';

const $ = (id) => document.getElementById(id);
const message = $('message');

let tracker = null;
let wasm = null;

/** This lesson's rules in one plain sentence; thresholds as the rules read them. */
function rulesSentence(session) {
  let w = null;
  try { w = wasm.timeline(session, null, Date.now()); } catch { return ''; }
  if (!w) return '';
  const grace = session.grace_minutes
    ? t('meet.rules.grace', { grace: count(session.grace_minutes), time: hhmm(w.window_end) }) : '';
  return t('meet.rules', { percent: count(w.present_percent), late: count(w.late_after_minutes) }) + grace;
}

function showSession(session) {
  if (!session) return;
  put($('rules'), rulesSentence(session));
  if (session.title) {
    $('title').textContent = session.title;
    document.title = t('meet.doc.title', { title: session.title });
  }
  $('session-when').textContent = t('meet.when', {
    date: dateLabel(session.scheduled_at), time: hhmm(session.scheduled_at), minutes: count(session.duration_minutes),
  }) + (session.grace_minutes ? t('meet.when.grace', { grace: count(session.grace_minutes) }) : '');
}

async function startTracker(wasm, room, token, name) {
  $('room-name').textContent = room;
  $('who').textContent = name ? `· ${name}` : '';
  $('tracker-card').hidden = false;
  tracker = new wasm.AttendanceTracker({
    serverUrl: baseUrl(),
    room,
    token,
    element: $('tracker'),
    heartbeatSeconds: Number(params.get('heartbeat')) || undefined,
    // The card's words from www/i18n, its numbers and times for the locale.
    text: t,
    format: { clock, percent, time: (ms) => hhmm(new Date(ms).toISOString()) },
  });
  window.attendanceTracker = tracker; // handy for debugging and browser tests
  watchConnection();
  return tracker;
}

/**
 * While the tracker cannot reach the service, the page says since when and
 * that the numbers are not confirmed; the notice goes when it is back.
 */
function watchConnection() {
  const card = $('tracker-card');
  let since = null;
  const update = () => {
    const link = $('tracker').querySelector('[data-field="connection"]');
    const value = link && link.dataset.value;
    const lost = value === 'reconnecting' || value === 'offline';
    if (lost && since === null) since = new Date().toISOString();
    if (!lost) since = null;
    card.classList.toggle('stale', lost);
    put($('tracker-stale'), lost ? t('meet.stale', { since: hhmm(since) }) : '');
  };
  new MutationObserver(update).observe($('tracker'), { subtree: true, attributes: true, attributeFilter: ['data-value'] });
  update();
}

async function liveKitMode(wasm, room, token, url) {
  let lk;
  try {
    lk = await import('./vendor/livekit-client.esm.mjs');
  } catch {
    showMessage(message, t('meet.call.missing'), true);
    await startTracker(wasm, room, token, jwtClaims(token).name);
    return;
  }
  const claims = jwtClaims(token);
  await startTracker(wasm, room, token, claims.name || claims.sub);
  const lkRoom = new lk.Room({ adaptiveStream: true, dynacast: true });
  tracker.attach(lkRoom);
  $('livekit-controls').hidden = false;
  const state = $('lk-state');
  const show = (value, text) => put(state, text, value);
  lkRoom
    .on(lk.RoomEvent.Connected, () => { show('live', t('meet.call.in')); $('lk-leave').hidden = false; $('lk-join').hidden = true; })
    .on(lk.RoomEvent.Reconnecting, () => show('reconnecting', t('meet.call.reconnecting')))
    .on(lk.RoomEvent.Reconnected, () => show('live', t('meet.call.in')))
    .on(lk.RoomEvent.Disconnected, () => { show('offline', t('meet.call.out')); $('lk-leave').hidden = true; $('lk-join').hidden = false; });
  const join = async () => {
    show('connecting', t('link.connecting'));
    try {
      await lkRoom.connect(url, token);
    } catch (e) {
      show('offline', t('meet.call.failed'));
      showMessage(message, t('meet.call.error', { error: e.message }), true);
      $('lk-join').hidden = false;
    }
  };
  $('lk-leave').addEventListener('click', () => lkRoom.disconnect());
  $('lk-join').addEventListener('click', join);
  await join();
}

function demoMode(wasm) {
  const room = params.get('room') || 'demo-class';
  $('demo-banner').hidden = false;
  $('room-name').textContent = room;
  $('demo-start').hidden = false;
  $('demo-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('start').disabled = true;
    showMessage(message, '');
    let demo;
    try {
      demo = await api('POST', 'demo/start', null, {
        identity: $('identity').value.trim() || 'student-1',
        name: $('name').value.trim() || 'Ada Lovelace',
        room,
      });
    } catch (e) {
      $('start').disabled = false;
      showMessage(message, t('demo.unavailable', { error: e.message }), true);
      return;
    }
    $('demo-start').hidden = true;
    keepToken(demo.room, demo.student_token);
    showSession(demo.session);
    await startTracker(wasm, demo.room, demo.student_token, $('name').value.trim());
    $('dashboard-link').href = pageLink('dashboard.html', { room: demo.room }, demo.teacher_token);
    $('demo-controls').hidden = false;

    const connect = $('connect');
    const disconnect = $('disconnect');
    const state = $('meeting-state');
    const path = (what) => `demo/rooms/${encodeURIComponent(demo.room)}/${what}`;
    // While a request runs the pressed button is marked busy, not disabled, so
    // keyboard focus stays on it; afterwards focus moves to the next action.
    let busy = false;
    const setIn = (inMeeting) => {
      connect.disabled = inMeeting;
      disconnect.disabled = !inMeeting;
      put(state, inMeeting ? t('meet.in') : t('meet.out'), inMeeting ? 'yes' : 'no');
    };
    const act = async (button, what, inMeeting, next) => {
      if (busy) return;
      busy = true;
      button.setAttribute('aria-disabled', 'true');
      try {
        await api('POST', path(what), demo.student_token);
        if (inMeeting) tracker.connected(); else tracker.disconnected();
        setIn(inMeeting);
        showMessage(message, '');
        next.focus();
      } catch (e) {
        // Nothing changed: the page says where the student still is.
        setIn(!inMeeting);
        showMessage(message, inMeeting
          ? t('meet.join.failed', { error: e.message })
          : t('meet.leave.failed', { error: e.message }), true);
        button.focus();
      } finally {
        busy = false;
        button.removeAttribute('aria-disabled');
      }
    };
    connect.addEventListener('click', () => act(connect, 'join', true, disconnect));
    disconnect.addEventListener('click', () => act(disconnect, 'leave', false, connect));
    connect.focus();
  });
}

async function main() {
  try {
    wasm = await loadTracker();
  } catch (e) {
    showMessage(message, e.message, true);
    return;
  }
  const token = pageToken;
  const livekit = params.get('livekit');
  if (token) {
    const claims = jwtClaims(token);
    const room = params.get('room') || (claims.video && claims.video.room) || '';
    if (!room) {
      showMessage(message, t('meet.no.room'), true);
      return;
    }
    if (livekit) {
      await liveKitMode(wasm, room, token, livekit);
    } else {
      // A token but no LiveKit URL: show the numbers only.
      await startTracker(wasm, room, token, claims.name || claims.sub);
    }
    try {
      $('demo-banner').hidden = !room.startsWith('demo-');
      showSession(await api('GET', `api/sessions/${encodeURIComponent(room)}`, token));
    } catch { /* the tracker shows what it knows */ }
  } else {
    demoMode(wasm);
  }
}

main();
