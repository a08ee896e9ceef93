// The one-room fan-out scenario driven by the npm `ws` client, so both
// attendance-server and the reference are measured by the same outside
// client (beside attendance-loadgen's own run of it).
//
//   LIVEKIT_API_KEY=k LIVEKIT_API_SECRET=s node bench/node-client/fanout.mjs \
//     --url http://127.0.0.1:PORT [--sockets 10000] [--events 40] [--rate 2]
//
// Schedules one room, opens --sockets teacher sockets on it (each reads its
// snapshot), then posts --events LiveKit-signed `participant_joined`
// webhooks at --rate per second. Every `attendance.updated` is timed from
// its `server_time` to its arrival (push latency). Prints `RESULT {json}`.
import crypto from 'node:crypto';
import WebSocket from '../reference-node/node_modules/ws/index.js';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const base = arg('url');
const sockets = Number(arg('sockets', '10000'));
const events = Number(arg('events', '40'));
const rate = Number(arg('rate', '2'));
const key = process.env.LIVEKIT_API_KEY;
const secret = process.env.LIVEKIT_API_SECRET;
if (!base || !key || !secret) {
  console.error('usage: LIVEKIT_API_KEY=… LIVEKIT_API_SECRET=… node fanout.mjs --url http://HOST:PORT');
  process.exit(2);
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');
function jwt(claims) {
  const input = `${b64url('{"alg":"HS256","typ":"JWT"}')}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}
const now = () => Math.floor(Date.now() / 1000);
const teacherToken = (identity, room) =>
  jwt({ iss: key, sub: identity, name: identity, nbf: now(), exp: now() + 3600,
        video: { room, roomJoin: true, roomAdmin: true } });

const run = crypto.randomBytes(3).toString('hex');
const room = `nodefan-${run}`;
const scheduled = await fetch(`${base}/api/sessions/${room}`, {
  method: 'PUT',
  headers: { authorization: `Bearer ${teacherToken(`teacher-${room}`, room)}`, 'content-type': 'application/json' },
  body: JSON.stringify({ scheduled_at: new Date(Date.now() - 5 * 60_000).toISOString(), duration_minutes: 60, title: 'load test' }),
});
if (!scheduled.ok) throw new Error(`scheduling: ${scheduled.status} ${await scheduled.text()}`);

const latencies = [];
let received = 0;
const wsBase = base.replace(/^http/, 'ws');
const connectStarted = Date.now();
const open = [];
for (let i = 0; i < sockets; i += 64) {
  const batch = [];
  for (let j = i; j < Math.min(sockets, i + 64); j++) {
    const token = teacherToken(`teacher-${j}`, room);
    batch.push(new Promise((resolve, reject) => {
      const ws = new WebSocket(`${wsBase}/api/sessions/${room}/live?access_token=${token}`, { perMessageDeflate: false });
      let snapshot = false;
      ws.on('message', (data) => {
        if (!snapshot) { snapshot = true; resolve(ws); return; }
        const text = data.toString();
        if (!text.includes('"attendance.updated"')) return;
        const msg = JSON.parse(text);
        received += 1;
        latencies.push(Date.now() - Date.parse(msg.server_time));
      });
      ws.on('error', reject);
    }));
  }
  open.push(...(await Promise.all(batch)));
}
const connectSeconds = (Date.now() - connectStarted) / 1000;

const cpu0 = process.cpuUsage();
const postStarted = Date.now();
for (let n = 0; n < events; n++) {
  const wait = postStarted + (n * 1000) / rate - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const t = Date.now();
  const body = JSON.stringify({
    event: 'participant_joined',
    room: { sid: `RM_${run}`, name: room },
    participant: { sid: `PA_${run}_${n}`, identity: `student-${n}`, name: `student-${n}`, state: 'ACTIVE',
                   joinedAt: String(Math.floor(t / 1000)), joinedAtMs: String(t) },
    id: `EV_${run}_${n}`,
    createdAt: String(Math.floor(t / 1000)),
  });
  const sha256 = crypto.createHash('sha256').update(body).digest('base64');
  const token = jwt({ iss: key, nbf: now(), exp: now() + 300, sha256 });
  const res = await fetch(`${base}/webhooks/livekit`, {
    method: 'POST', headers: { authorization: token, 'content-type': 'application/webhook+json' }, body,
  });
  if (res.status !== 200) console.error(`webhook ${n}: ${res.status}`);
}
const expected = events * sockets;
const settleUntil = Date.now() + 15_000;
while (received < expected && Date.now() < settleUntil) await new Promise((r) => setTimeout(r, 50));
const wall = (Date.now() - postStarted) / 1000;
const used = process.cpuUsage(cpu0);
for (const ws of open) ws.terminate();

latencies.sort((a, b) => a - b);
const pct = (p) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] : null;
console.log('RESULT ' + JSON.stringify({
  scenario: 'fanout-node-ws', client: 'npm ws', sockets, events, rate, connect_seconds: connectSeconds,
  expected_updates: expected, received,
  push_latency_ms: { p50: pct(50), p95: pct(95), p99: pct(99), max: latencies.at(-1) ?? null },
  client_cores: +(((used.user + used.system) / 1e6) / wall).toFixed(2),
}));
process.exit(received > 0 ? 0 : 1);
