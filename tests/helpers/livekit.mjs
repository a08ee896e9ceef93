// LiveKit's wire formats, built by hand with node:crypto (independent of the
// server's code): HS256 access tokens, webhook tokens carrying the body's
// sha256, and WebhookEvent bodies spaced like Go's protojson.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { KEY, SECRET } from './server.mjs';

const b64url = (data) => Buffer.from(data).toString('base64url');
const nowS = () => Math.floor(Date.now() / 1000);

export function jwt(claims, secret = SECRET) {
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** Standard padded base64 of the body's SHA-256, as LiveKit puts in `sha256`. */
export const bodySha256 = (body) => createHash('sha256').update(body).digest('base64');

/** A webhook token as livekit-server signs one. */
export function webhookToken(body, { key = KEY, secret = SECRET } = {}) {
  const now = nowS();
  return jwt({ iss: key, nbf: now, exp: now + 300, sha256: bodySha256(body) }, secret);
}

/** An access token; role is `student`, `teacher` or `admin`. */
export function accessToken(identity, room, role = 'student', { name = identity, ttl = 3600 } = {}) {
  const video = {
    student: { room, roomJoin: true, canPublish: true },
    teacher: { room, roomJoin: true, roomAdmin: true },
    admin: { roomCreate: true, roomList: true },
  }[role];
  const now = nowS();
  return jwt({ iss: KEY, sub: identity, name, nbf: now, exp: now + ttl, video });
}

export const eventId = () => 'EV_' + randomBytes(9).toString('base64url').slice(0, 12);

/** Unix seconds of an RFC 3339 time. */
export const unix = (iso) => Math.floor(Date.parse(iso) / 1000);

/**
 * A participant WebhookEvent in protojson as LiveKit's Go server writes it:
 * `", "` after commas, int64 as strings, plus a field this service does not know.
 * `participantKind` (`EGRESS`, `AGENT`, …) is left out for a standard participant,
 * as protojson leaves out enum defaults.
 */
export function participantEvent(kind, {
  room, sid, identity, name = identity, joinedAt, createdAt, id = eventId(), participantKind,
}) {
  const value = {
    event: kind,
    room: { sid: `RM_${room}`, name: room, emptyTimeout: 300, creationTime: String(joinedAt - 600) },
    participant: {
      sid, identity, name, state: kind === 'participant_joined' ? 'ACTIVE' : 'DISCONNECTED',
      joinedAt: String(joinedAt), joinedAtMs: String(joinedAt * 1000), version: 2,
      permission: { canSubscribe: true, canPublish: true },
      someFutureField: { nested: 1 },
      ...(participantKind ? { kind: participantKind } : {}),
    },
    id,
    createdAt: String(createdAt),
  };
  return JSON.stringify(value).replaceAll(',"', ', "');
}
