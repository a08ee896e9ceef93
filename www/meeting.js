// The student page: the wasm tracker, driven by a LiveKit room (?livekit=&token=)
// or by the demo endpoints of a server started with --demo.
import { api, jwtClaims, loadTracker, params, put, showMessage, dateLabel, hhmm } from './common.js';

const $ = (id) => document.getElementById(id);
const message = $('message');

let tracker = null;

function showSession(session) {
  if (!session) return;
  if (session.title) {
    $('title').textContent = session.title;
    document.title = `${session.title} · Your attendance`;
  }
  $('session-when').textContent = `· ${dateLabel(session.scheduled_at)}, ` +
    `${hhmm(session.scheduled_at)} for ${session.duration_minutes} min` +
    (session.grace_minutes ? ` (+${session.grace_minutes} min grace)` : '');
}

async function startTracker(wasm, room, token, name) {
  $('room-name').textContent = room;
  $('who').textContent = name ? `· ${name}` : '';
  $('tracker-card').hidden = false;
  tracker = new wasm.AttendanceTracker({
    serverUrl: location.origin,
    room,
    token,
    element: $('tracker'),
    heartbeatSeconds: Number(params.get('heartbeat')) || undefined,
  });
  window.attendanceTracker = tracker; // handy for debugging and browser tests
  return tracker;
}

async function liveKitMode(wasm, room, token, url) {
  let lk;
  try {
    lk = await import('./vendor/livekit-client.esm.mjs');
  } catch {
    showMessage(message, 'livekit-client is not installed on this server (www/vendor/livekit-client.esm.mjs), ' +
      'so the page cannot join the call. Your attendance below still updates live.', true);
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
    .on(lk.RoomEvent.Connected, () => { show('live', 'In the call'); $('lk-leave').hidden = false; $('lk-join').hidden = true; })
    .on(lk.RoomEvent.Reconnecting, () => show('reconnecting', 'Reconnecting…'))
    .on(lk.RoomEvent.Reconnected, () => show('live', 'In the call'))
    .on(lk.RoomEvent.Disconnected, () => { show('offline', 'Not in the call'); $('lk-leave').hidden = true; $('lk-join').hidden = false; });
  const join = async () => {
    show('connecting', 'Connecting…');
    try {
      await lkRoom.connect(url, token);
    } catch (e) {
      show('offline', 'Could not join');
      showMessage(message, 'Could not join the LiveKit call: ' + e.message, true);
      $('lk-join').hidden = false;
    }
  };
  $('lk-leave').addEventListener('click', () => lkRoom.disconnect());
  $('lk-join').addEventListener('click', join);
  await join();
}

function demoMode(wasm) {
  const room = params.get('room') || 'demo-class';
  $('room-name').textContent = room;
  $('demo-start').hidden = false;
  $('demo-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('start').disabled = true;
    showMessage(message, '');
    let demo;
    try {
      demo = await api('POST', '/demo/start', null, {
        identity: $('identity').value.trim() || 'student-1',
        name: $('name').value.trim() || 'Ada Lovelace',
        room,
      });
    } catch (e) {
      $('start').disabled = false;
      showMessage(message, 'Demo mode is not available (start the server with --demo). ' + e.message, true);
      return;
    }
    $('demo-start').hidden = true;
    showSession(demo.session);
    await startTracker(wasm, demo.room, demo.student_token, $('name').value.trim());
    const dash = new URL('dashboard.html', location.href);
    dash.searchParams.set('room', demo.room);
    dash.searchParams.set('token', demo.teacher_token);
    $('dashboard-link').href = dash.toString();
    $('demo-controls').hidden = false;

    const connect = $('connect');
    const disconnect = $('disconnect');
    const state = $('meeting-state');
    const path = (what) => `/demo/rooms/${encodeURIComponent(demo.room)}/${what}`;
    connect.addEventListener('click', async () => {
      connect.disabled = true;
      try {
        await api('POST', path('join'), demo.student_token);
        tracker.connected();
        disconnect.disabled = false;
        put(state, 'In the meeting', 'yes');
        showMessage(message, '');
      } catch (e) {
        connect.disabled = false;
        showMessage(message, 'Could not join: ' + e.message, true);
      }
    });
    disconnect.addEventListener('click', async () => {
      disconnect.disabled = true;
      try {
        await api('POST', path('leave'), demo.student_token);
        tracker.disconnected();
        connect.disabled = false;
        put(state, 'Not in the meeting', 'no');
        showMessage(message, '');
      } catch (e) {
        disconnect.disabled = false;
        showMessage(message, 'Could not leave: ' + e.message, true);
      }
    });
    connect.focus();
  });
}

async function main() {
  let wasm;
  try {
    wasm = await loadTracker();
  } catch (e) {
    showMessage(message, e.message, true);
    return;
  }
  const token = params.get('token');
  const livekit = params.get('livekit');
  if (token) {
    const claims = jwtClaims(token);
    const room = params.get('room') || (claims.video && claims.video.room) || '';
    if (!room) {
      showMessage(message, 'The link has no room (?room=) and the token names none.', true);
      return;
    }
    if (livekit) {
      await liveKitMode(wasm, room, token, livekit);
    } else {
      // A token but no LiveKit URL: show the numbers only.
      await startTracker(wasm, room, token, claims.name || claims.sub);
      showMessage(message, 'Showing your attendance only: add ?livekit=wss://… to join the call from this page.');
    }
    try {
      showSession(await api('GET', `/api/sessions/${encodeURIComponent(room)}`, token));
    } catch { /* the tracker shows what it knows */ }
  } else {
    demoMode(wasm);
  }
}

main();
