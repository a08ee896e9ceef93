-- Facts only: what LiveKit, browsers and teachers reported. Every attendance
-- number is computed from these by attendance-rules when it is read.

CREATE TABLE sessions (
    room                    TEXT PRIMARY KEY,   -- the LiveKit room name
    title                   TEXT NOT NULL DEFAULT '',
    scheduled_at_ms         INTEGER NOT NULL,
    duration_minutes        INTEGER NOT NULL,
    grace_minutes           INTEGER NOT NULL,
    late_after_minutes      INTEGER NOT NULL,
    present_percent         INTEGER NOT NULL,
    heartbeat_stale_seconds INTEGER NOT NULL,
    created_at_ms           INTEGER NOT NULL,
    updated_at_ms           INTEGER NOT NULL
);

-- The inbox: every verified webhook, stored before LiveKit gets its 200.
CREATE TABLE webhook_events (
    id                 TEXT PRIMARY KEY,        -- LiveKit's event id: the idempotency key
    event              TEXT NOT NULL,
    room               TEXT NOT NULL DEFAULT '',
    created_at_ms      INTEGER NOT NULL,        -- when it happened (LiveKit's createdAt)
    received_at_ms     INTEGER NOT NULL,
    api_key            TEXT NOT NULL,
    body               TEXT NOT NULL,           -- the raw body, exactly as signed
    status             TEXT NOT NULL DEFAULT 'pending', -- pending | processed | failed
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER NOT NULL,
    last_error         TEXT,
    processed_at_ms    INTEGER
);
CREATE INDEX webhook_events_due ON webhook_events (status, next_attempt_at_ms);

-- One row per LiveKit connection (participant sid).
CREATE TABLE cycles (
    participant_sid TEXT PRIMARY KEY,
    room            TEXT NOT NULL,
    room_sid        TEXT NOT NULL DEFAULT '',
    identity        TEXT NOT NULL,
    name            TEXT NOT NULL DEFAULT '',
    kind            TEXT NOT NULL DEFAULT '',
    metadata        TEXT NOT NULL DEFAULT '',
    joined_at_ms    INTEGER,                    -- NULL while only a leave was seen
    left_at_ms      INTEGER,
    close_reason    TEXT,
    updated_at_ms   INTEGER NOT NULL
);
CREATE INDEX cycles_by_room ON cycles (room, identity);
CREATE INDEX cycles_open ON cycles (room) WHERE left_at_ms IS NULL;

-- room_finished per room instance, so a join processed late still closes.
CREATE TABLE finished_rooms (
    room_sid       TEXT PRIMARY KEY,
    room           TEXT NOT NULL,
    finished_at_ms INTEGER NOT NULL
);

CREATE TABLE heartbeats (
    room                 TEXT NOT NULL,
    identity             TEXT NOT NULL,
    last_heartbeat_at_ms INTEGER NOT NULL,
    beats                INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room, identity)
);
