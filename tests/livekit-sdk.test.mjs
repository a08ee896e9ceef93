// The service against LiveKit's official Node server SDK (livekit-server-sdk):
// tokens and webhooks signed by the SDK are accepted, forged or expired ones
// are not, and the tokens our CLI mints pass the SDK's own verifier.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AccessToken, TokenVerifier, WebhookReceiver } from 'livekit-server-sdk';
import { BINARY, KEY, ROOT, SECRET, startServer } from './helpers/server.mjs';
import { bodySha256, eventId, participantEvent, unix } from './helpers/livekit.mjs';

const ROOM = 'sdk-math-101';
const SESSION_AT = '2025-11-25T11:00:00Z';

/** An access token minted by the SDK. */
async function sdkToken(identity, grant, options = {}) {
  const token = new AccessToken(options.key ?? KEY, options.secret ?? SECRET, {
    identity, name: identity, ttl: options.ttl ?? '1h',
  });
  token.addGrant(grant);
  return token.toJwt();
}

/** A webhook token as LiveKit's server signs one, made with the SDK. */
async function sdkWebhookToken(body, options = {}) {
  const token = new AccessToken(options.key ?? KEY, options.secret ?? SECRET, { ttl: options.ttl ?? '5m' });
  token.sha256 = bodySha256(body);
  return token.toJwt();
}

describe('livekit-server-sdk', () => {
  let server;
  let teacher;
  let admin;

  before(async () => {
    server = await startServer();
    teacher = await sdkToken('ms-smith', { room: ROOM, roomJoin: true, roomAdmin: true });
    admin = await sdkToken('admin', { roomCreate: true, roomList: true });
  });

  after(async () => {
    await server?.close();
  });

  test('a teacher token minted by the SDK schedules a session', async () => {
    const res = await server.fetch(`/api/sessions/${ROOM}`, {
      method: 'PUT',
      token: teacher,
      body: { scheduled_at: SESSION_AT, duration_minutes: 60, title: 'Algebra' },
    });
    assert.ok([200, 201].includes(res.status), `PUT session: ${res.status} ${await res.text()}`);
    const session = await server.json(`/api/sessions/${ROOM}`, { token: teacher });
    assert.equal(session.duration_minutes, 60);
    assert.equal(Date.parse(session.scheduled_at), Date.parse(SESSION_AT));
  });

  test('SDK-signed join and leave webhooks produce the capped numbers', async () => {
    const joinedAt = unix('2025-11-25T10:45:00Z');
    const leftAt = unix('2025-11-25T11:15:00Z');
    const who = { room: ROOM, sid: 'PA_sdkAda00001', identity: 'ada', name: 'Ada Lovelace', joinedAt };
    const joined = participantEvent('participant_joined', { ...who, createdAt: joinedAt });
    const left = participantEvent('participant_left', { ...who, createdAt: leftAt });
    assert.match(joined, /}, "participant":\{"sid"/, "Go-style spacing");

    for (const body of [joined, left]) {
      const auth = await sdkWebhookToken(body);
      // The SDK's own receiver accepts what we are about to send.
      const event = await new WebhookReceiver(KEY, SECRET).receive(body, auth);
      assert.equal(event.participant.identity, 'ada');
      const res = await server.postWebhook(body, auth);
      const text = await res.text();
      assert.equal(res.status, 200, text);
      assert.equal(JSON.parse(text).status, 'accepted');
    }
    await server.settle(admin);

    const report = await server.json(`/api/sessions/${ROOM}/attendance`, { token: teacher });
    const ada = report.participants.find((p) => p.identity === 'ada');
    assert.ok(ada, JSON.stringify(report));
    // Counted from 11:00 (not 10:45) to 11:15: 15 of 60 minutes.
    assert.equal(ada.attended_seconds, 900);
    assert.equal(ada.attendance_percentage, 25.0);
    assert.equal(ada.status, 'partial');
    assert.equal(ada.join_count, 1);
    assert.equal(report.phase, 'ended');

    // The participant's own SDK token reads the same numbers.
    const own = await sdkToken('ada', { room: ROOM, roomJoin: true });
    const mine = await server.json(`/api/sessions/${ROOM}/attendance/ada`, { token: own });
    assert.equal(mine.attended_seconds, 900);
  });

  test('the same event id twice is a 200 duplicate', async () => {
    const at = unix('2025-11-25T11:20:00Z');
    const id = eventId();
    const body = participantEvent('participant_joined', {
      room: ROOM, sid: 'PA_sdkBob00001', identity: 'bob', joinedAt: at, createdAt: at, id,
    });
    const first = await server.postWebhook(body, await sdkWebhookToken(body));
    assert.equal(first.status, 200);
    assert.equal((await first.json()).status, 'accepted');
    const second = await server.postWebhook(body, await sdkWebhookToken(body));
    assert.equal(second.status, 200);
    assert.equal((await second.json()).status, 'duplicate');
  });

  test('forged webhooks are refused with 401', async () => {
    const at = unix('2025-11-25T11:30:00Z');
    const body = participantEvent('participant_joined', {
      room: ROOM, sid: 'PA_sdkEve00001', identity: 'eve', joinedAt: at, createdAt: at,
    });
    const good = await sdkWebhookToken(body);

    // The body changed after signing (Ada's identity swapped for Eve's elsewhere).
    const tampered = body.replace('"identity":"eve"', '"identity":"mallory"');
    assert.notEqual(tampered, body);
    assert.equal((await server.postWebhook(tampered, good)).status, 401, 'tampered body');

    // Expired: the SDK token's lifetime ended ten minutes ago (beyond any leeway).
    const expired = await sdkWebhookToken(body, { ttl: -600 });
    await assert.rejects(new TokenVerifier(KEY, SECRET).verify(expired), /exp/);
    assert.equal((await server.postWebhook(body, expired)).status, 401, 'expired token');

    // nbf in the future beyond leeway: claims manipulated, then re-signed correctly.
    const verifier = new TokenVerifier(KEY, SECRET);
    const claims = await verifier.verify(good);
    const { jwt } = await import('./helpers/livekit.mjs');
    const future = jwt({ ...claims, nbf: claims.nbf + 3600, exp: claims.exp + 3600 });
    assert.equal((await server.postWebhook(body, future)).status, 401, 'nbf an hour ahead');
    // nbf 30 s ahead is within the leeway LiveKit allows.
    const soon = jwt({ ...claims, nbf: claims.nbf + 30 });
    assert.equal((await server.postWebhook(body, soon)).status, 200, 'nbf 30 s ahead');

    // exp edited in the payload without re-signing: the signature breaks.
    const [h, , s] = good.split('.');
    const edited = `${h}.${Buffer.from(JSON.stringify({ ...claims, exp: claims.exp + 86400 })).toString('base64url')}.${s}`;
    assert.equal((await server.postWebhook(body, edited)).status, 401, 'payload edited');

    // Signed by the SDK with another secret, or another key.
    const wrongSecret = await sdkWebhookToken(body, { secret: 'not-the-secret-not-the-secret-not-the-secret' });
    assert.equal((await server.postWebhook(body, wrongSecret)).status, 401, 'wrong secret');
    const wrongKey = await sdkWebhookToken(body, { key: 'APIunknown' });
    assert.equal((await server.postWebhook(body, wrongKey)).status, 401, 'unknown key');

    // No Authorization at all.
    assert.equal((await server.postWebhook(body)).status, 401, 'no token');
  });

  test('forged or expired SDK access tokens are refused with 401', async () => {
    const grant = { room: ROOM, roomJoin: true, roomAdmin: true };
    const expired = await sdkToken('ms-smith', grant, { ttl: -600 });
    const wrong = await sdkToken('ms-smith', grant, { secret: 'not-the-secret-not-the-secret-not-the-secret' });
    for (const [what, token] of [['expired', expired], ['wrong secret', wrong]]) {
      const res = await server.fetch(`/api/sessions/${ROOM}/attendance`, { token });
      assert.equal(res.status, 401, what);
    }
    // A webhook token is not a user token.
    const webhookOnly = await sdkWebhookToken('{}');
    assert.equal((await server.fetch(`/api/sessions/${ROOM}/attendance`, { token: webhookOnly })).status, 401);
  });

  test('a student SDK token cannot read a classmate', async () => {
    const bob = await sdkToken('bob', { room: ROOM, roomJoin: true });
    assert.equal((await server.fetch(`/api/sessions/${ROOM}/attendance/ada`, { token: bob })).status, 403);
    assert.equal((await server.fetch(`/api/sessions/${ROOM}/attendance`, { token: bob })).status, 403);
  });

  test('tokens minted by `attendance-server token` pass the SDK verifier', async () => {
    const { stdout } = await promisify(execFile)(BINARY, [
      'token', '--identity', 'ms-smith', '--room', ROOM, '--role', 'teacher', '--name', 'Ms Smith', '--ttl', '2h',
    ], { cwd: ROOT, env: { PATH: process.env.PATH, LIVEKIT_API_KEY: KEY, LIVEKIT_API_SECRET: SECRET }, timeout: 10000 });
    const token = stdout.trim();
    const claims = await new TokenVerifier(KEY, SECRET).verify(token);
    assert.equal(claims.iss, KEY);
    assert.equal(claims.sub, 'ms-smith');
    assert.equal(claims.name, 'Ms Smith');
    assert.equal(claims.video.room, ROOM);
    assert.equal(claims.video.roomJoin, true);
    assert.equal(claims.video.roomAdmin, true);
    const lifetime = claims.exp - claims.nbf;
    assert.ok(Math.abs(lifetime - 7200) <= 5, `ttl 2h, got ${lifetime} s`);
    // With another secret the SDK refuses it.
    await assert.rejects(new TokenVerifier(KEY, 'x'.repeat(40)).verify(token));
    // And the server accepts it like the SDK's.
    const report = await server.json(`/api/sessions/${ROOM}/attendance`, { token });
    assert.ok(report.participants.some((p) => p.identity === 'ada'));
  });
});
