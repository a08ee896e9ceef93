-- Outbound webhooks (Standard Webhooks): the endpoints administrators
-- register, the outbox (one message per event and endpoint, written in the
-- same transaction as the fact that caused it), every delivery attempt, and
-- the last final result sent per session.
-- (0005 is left to the lessons migration.)

CREATE TABLE outbound_endpoints (
    id                       TEXT PRIMARY KEY,        -- ep_…
    url                      TEXT NOT NULL,
    description              TEXT NOT NULL DEFAULT '',
    events                   TEXT NOT NULL,           -- JSON array of event types
    secret                   TEXT NOT NULL,           -- whsec_ + base64
    previous_secret          TEXT,                    -- after a rotation, also signed with …
    previous_secret_until_ms INTEGER,                 -- … until then
    failing_since_ms         INTEGER,                 -- first failure since the last success
    disabled_at_ms           INTEGER,
    disabled_reason          TEXT,
    created_at_ms            INTEGER NOT NULL,
    updated_at_ms            INTEGER NOT NULL
);

-- The outbox. The id is the message's `webhook-id`, the same on every attempt.
CREATE TABLE outbound_messages (
    id                 TEXT PRIMARY KEY,              -- msg_…
    endpoint_id        TEXT NOT NULL,
    event_type         TEXT NOT NULL,
    payload            TEXT NOT NULL,                 -- the body, exactly as signed
    status             TEXT NOT NULL DEFAULT 'pending', -- pending | delivered | failed
    attempts           INTEGER NOT NULL DEFAULT 0,    -- every attempt ever made
    step               INTEGER NOT NULL DEFAULT 0,    -- place in the retry schedule
    next_attempt_at_ms INTEGER NOT NULL,              -- also the end of a claim's lease
    lease_token        TEXT,                          -- the claim an attempt must hold to record
    created_at_ms      INTEGER NOT NULL,
    last_attempt_at_ms INTEGER,
    last_status        INTEGER,                       -- HTTP status of the last attempt, if any
    last_error         TEXT,
    delivered_at_ms    INTEGER
);
CREATE INDEX outbound_messages_due ON outbound_messages (next_attempt_at_ms) WHERE status = 'pending';
CREATE INDEX outbound_messages_by_endpoint ON outbound_messages (endpoint_id, status, created_at_ms);

CREATE TABLE outbound_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    at_ms       INTEGER NOT NULL,
    status_code INTEGER,                              -- NULL: no HTTP answer
    duration_ms INTEGER NOT NULL,
    response    TEXT NOT NULL DEFAULT '',             -- the answer's first KiB
    error       TEXT                                  -- timeout, refused, …
);
CREATE INDEX outbound_attempts_by_message ON outbound_attempts (message_id, id);

-- The digest of the final result last announced per session: a
-- `session.finalized` is sent again only when it changes.
CREATE TABLE outbound_finals (
    room           TEXT PRIMARY KEY,
    digest         TEXT NOT NULL,
    computed_at_ms INTEGER NOT NULL,                  -- when the facts behind it were read
    sent_at_ms     INTEGER NOT NULL
);

-- Small shared values; `finals_checked_ms`: facts changed before it were checked.
CREATE TABLE outbound_state (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

-- What changed since a time, for the finalizer.
CREATE INDEX cycles_by_update ON cycles (updated_at_ms);
CREATE INDEX sessions_by_update ON sessions (updated_at_ms);
CREATE INDEX override_audit_by_time ON override_audit (at_ms);
