// REFERENCE IMPLEMENTATION — NOT PART OF THE PRODUCT.
//
// A deliberately small Node.js server that speaks the same wire protocol as
// attendance-server for the routes the load generator drives, so both can be
// measured with the same load on the same machine:
//
//   POST /webhooks/livekit                 livekit-server-sdk's WebhookReceiver
//   PUT  /api/sessions/:room               keeps the schedule in memory
//   POST /api/sessions/:room/heartbeat     TokenVerifier + in-memory map
//   GET  /api/sessions/:room/live          npm `ws`: snapshot, attendance.updated,
//                                          {"type":"heartbeat"} (5 s throttle)
//
// What it does NOT do, so read its numbers as a yardstick, not a competitor:
// no database, no join/leave cycles, no attendance rules (the pushed
// `attendance` object is a stub), no retries or dead letters, one thread.
//
// Durability of webhooks (`--store`):
//   fsync (default)  append the raw body to a file and fsync it before the
//                    200, one fsync per webhook (like SQLite synchronous=FULL
//                    with one transaction per webhook);
//   none             keep ids in memory only (lost on a crash).
// Heartbeats and sessions are memory only in both modes.
//
// Usage: LIVEKIT_API_KEY=k LIVEKIT_API_SECRET=s node server.mjs \
//          [--listen 127.0.0.1:0] [--store fsync|none] [--file /tmp/ref-events.log]
// Prints `listening on http://ADDR` on stdout, like attendance-server.

import http from 'node:http';
import fs from 'node:fs/promises';
import { WebhookReceiver, TokenVerifier } from 'livekit-server-sdk';
import { WebSocketServer } from 'ws';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const key = process.env.LIVEKIT_API_KEY;
const secret = process.env.LIVEKIT_API_SECRET;
if (!key || !secret) {
  console.error('reference: set LIVEKIT_API_KEY and LIVEKIT_API_SECRET');
  process.exit(2);
}
const listen = arg('listen', '127.0.0.1:0');
const store = arg('store', 'fsync');
if (!['fsync', 'none'].includes(store)) {
  console.error('reference: --store must be fsync or none');
  process.exit(2);
}
const file = arg('file', `/tmp/reference-node-events-${process.pid}.log`);
const log = store === 'fsync' ? await fs.open(file, 'a') : null;

const receiver = new WebhookReceiver(key, secret);
const verifier = new TokenVerifier(key, secret);

const seen = new Set(); // webhook ids: duplicates answer "duplicate"
const sessions = new Map(); // room -> session view
const heartbeats = new Map(); // `${room}\n${identity}` -> ISO time
const present = new Map(); // room -> Map(identity -> {joined_at, left_at})
const subscribers = new Map(); // room -> Set(ws)

const nowIso = () => new Date().toISOString();

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > 1024 * 1024) {
        reject(Object.assign(new Error('too big'), { status: 413 }));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function principal(token) {
  const claims = await verifier.verify(token ?? '');
  if (claims.sha256 || !claims.video) throw new Error('not an access token');
  const v = claims.video;
  const admin = Boolean(v.roomCreate || v.roomList);
  return {
    identity: claims.sub ?? '',
    room: v.room ?? '',
    admin,
    manages: (room) => admin || (Boolean(v.roomAdmin) && v.room === room),
    belongs: (room) => admin || (v.room === room && Boolean(v.roomJoin || v.roomAdmin)),
  };
}

function bearer(req) {
  const h = req.headers.authorization ?? '';
  return h.startsWith('Bearer ') ? h.slice(7) : h;
}

function participantView(room, identity) {
  const p = present.get(room)?.get(identity);
  return {
    identity,
    joined_at: p?.joined_at ?? null,
    left_at: p?.left_at ?? null,
    last_heartbeat_at: heartbeats.get(`${room}\n${identity}`) ?? null,
  };
}

// Renders once per change, sends to the room's teachers and to the student.
function publish(room, identity) {
  const subs = subscribers.get(room);
  if (!subs || subs.size === 0) return;
  const text = JSON.stringify({
    type: 'attendance.updated',
    room,
    identity,
    attendance: participantView(room, identity),
    session: sessions.get(room) ?? null,
    server_time: nowIso(),
  });
  for (const ws of subs) {
    if (ws.who.manages(room) || ws.who.identity === identity) ws.send(text);
  }
}

function snapshot(room, who) {
  const everyone = who.manages(room) ? [...(present.get(room)?.keys() ?? [])] : [who.identity];
  return JSON.stringify({
    type: 'attendance.snapshot',
    room,
    session: sessions.get(room) ?? null,
    participants: everyone.map((id) => participantView(room, id)),
    server_time: nowIso(),
  });
}

async function webhook(req, res) {
  const body = await readBody(req);
  let event;
  try {
    event = await receiver.receive(body, req.headers.authorization);
  } catch (e) {
    return json(res, 401, { error: String(e.message ?? e) });
  }
  if (!event.id) return json(res, 400, { error: 'webhook event has no id' });
  if (seen.has(event.id)) return json(res, 200, { status: 'duplicate', id: event.id });
  if (log) {
    await log.appendFile(body + '\n');
    await log.sync();
  }
  seen.add(event.id);
  const room = event.room?.name ?? '';
  const identity = event.participant?.identity ?? '';
  if (room && identity && (event.event === 'participant_joined' || event.event === 'participant_left')) {
    if (!present.has(room)) present.set(room, new Map());
    const p = present.get(room).get(identity) ?? {};
    if (event.event === 'participant_joined') {
      p.joined_at = new Date(Number(event.participant.joinedAtMs || event.createdAt * 1000n)).toISOString();
      p.left_at = null;
    } else {
      p.left_at = new Date(Number(event.createdAt) * 1000).toISOString();
    }
    present.get(room).set(identity, p);
    publish(room, identity);
  }
  json(res, 200, { status: 'accepted', id: event.id });
}

async function putSession(req, res, room) {
  const who = await principal(bearer(req));
  if (!who.manages(room)) return json(res, 403, { error: 'teacher or admin only' });
  const body = JSON.parse(await readBody(req));
  if (!body.scheduled_at || !(body.duration_minutes > 0)) return json(res, 400, { error: 'invalid session' });
  const created = !sessions.has(room);
  const view = { room, title: body.title ?? '', scheduled_at: body.scheduled_at, duration_minutes: body.duration_minutes };
  sessions.set(room, view);
  json(res, created ? 201 : 200, view);
}

function recordHeartbeat(room, who) {
  const at = nowIso();
  heartbeats.set(`${room}\n${who.identity}`, at);
  publish(room, who.identity);
  return at;
}

async function heartbeat(req, res, room) {
  const who = await principal(bearer(req));
  if (!who.belongs(room) || !who.identity) return json(res, 403, { error: 'not a participant of this room' });
  const at = recordHeartbeat(room, who);
  json(res, 200, { last_heartbeat_at: at, attendance: participantView(room, who.identity) });
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://x');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (req.method === 'POST' && url.pathname === '/webhooks/livekit') return await webhook(req, res);
    if (parts[0] === 'api' && parts[1] === 'sessions' && parts.length === 3 && req.method === 'PUT') {
      return await putSession(req, res, parts[2]);
    }
    if (parts[0] === 'api' && parts[1] === 'sessions' && parts[3] === 'heartbeat' && req.method === 'POST') {
      return await heartbeat(req, res, parts[2]);
    }
    if (url.pathname === '/healthz') return json(res, 200, { status: 'ok' });
    json(res, 404, { error: 'not found' });
  } catch (e) {
    if (!res.headersSent) json(res, e.status ?? (e.code?.startsWith?.('ERR_JW') ? 401 : 400), { error: String(e.message ?? e) });
  }
});
server.keepAliveTimeout = 60_000;

const wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
server.on('upgrade', async (req, socket, head) => {
  const url = new URL(req.url, 'http://x');
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  let who;
  try {
    if (!(parts[0] === 'api' && parts[1] === 'sessions' && parts[3] === 'live')) throw new Error('not found');
    who = await principal(url.searchParams.get('access_token') ?? bearer(req));
    if (!who.belongs(parts[2])) throw new Error('another room');
  } catch {
    socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  const room = parts[2];
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.who = who;
    let lastBeat = 0;
    if (!subscribers.has(room)) subscribers.set(room, new Set());
    subscribers.get(room).add(ws);
    ws.send(snapshot(room, who));
    ws.on('message', (data) => {
      let m;
      try { m = JSON.parse(data.toString()); } catch { return ws.send(JSON.stringify({ type: 'error', message: 'malformed message' })); }
      if (m.type === 'heartbeat') {
        const now = Date.now();
        if (now - lastBeat < 5000) {
          return ws.send(JSON.stringify({ type: 'heartbeat.ack', throttled: true, server_time: nowIso() }));
        }
        lastBeat = now;
        const at = recordHeartbeat(room, who);
        return ws.send(JSON.stringify({ type: 'heartbeat.ack', last_heartbeat_at: at, server_time: nowIso() }));
      }
      ws.send(JSON.stringify({ type: 'error', message: `unknown message type \`${m.type}\`` }));
    });
    ws.on('close', () => {
      const subs = subscribers.get(room);
      subs?.delete(ws);
      if (subs?.size === 0) subscribers.delete(room);
    });
    ws.on('error', () => {});
  });
});

const [host, port] = [listen.slice(0, listen.lastIndexOf(':')), Number(listen.slice(listen.lastIndexOf(':') + 1))];
server.listen(port, host, () => {
  const a = server.address();
  console.log(`listening on http://${a.address}:${a.port}`);
  console.error(`reference-node: store=${store}${log ? ` file=${file}` : ''}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    server.close();
    for (const ws of wss.clients) ws.terminate();
    await log?.close();
    process.exit(0);
  });
}
