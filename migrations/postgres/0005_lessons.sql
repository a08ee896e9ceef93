-- Lessons, not rooms: a room has any number of sessions over time, each
-- with a stable id; rosters, corrections and the audit trail belong to one
-- session. Every existing session becomes one lesson, keeping its roster,
-- corrections and audit entries. Facts (cycles, heartbeats) stay per room:
-- each session's report clips them to its own window.

CREATE TABLE sessions_v5 (
    id                      BIGSERIAL PRIMARY KEY,
    room                    TEXT NOT NULL,
    -- lesson: scheduled by someone; unscheduled: made for a LiveKit room
    -- instance (room_sid) that nobody scheduled.
    kind                    TEXT NOT NULL DEFAULT 'lesson',
    room_sid                TEXT NOT NULL DEFAULT '',
    class_id                BIGINT,           -- the class it was made for, if any
    occurrence_ms           BIGINT,           -- the class slot it was made for
    customized              BIGINT NOT NULL DEFAULT 0, -- changed by hand: class changes leave it
    roster_from_class       BIGINT NOT NULL DEFAULT 0, -- its roster is the class's
    title                   TEXT NOT NULL DEFAULT '',
    scheduled_at_ms         BIGINT NOT NULL,
    duration_minutes        BIGINT NOT NULL,
    grace_minutes           BIGINT NOT NULL,
    late_after_minutes      BIGINT NOT NULL,
    present_percent         BIGINT NOT NULL,
    heartbeat_stale_seconds BIGINT NOT NULL,
    -- scheduled_at + duration + grace: the counting window's end (for an
    -- unscheduled session, computed from its instance when read).
    window_end_ms           BIGINT NOT NULL,
    timezone                TEXT NOT NULL DEFAULT '',
    teacher_present_percent BIGINT NOT NULL DEFAULT 90,
    has_roster              BIGINT NOT NULL DEFAULT 0,
    created_at_ms           BIGINT NOT NULL,
    updated_at_ms           BIGINT NOT NULL
);
INSERT INTO sessions_v5 (room, title, scheduled_at_ms, duration_minutes, grace_minutes,
    late_after_minutes, present_percent, heartbeat_stale_seconds, window_end_ms, timezone,
    teacher_present_percent, has_roster, created_at_ms, updated_at_ms)
SELECT room, title, scheduled_at_ms, duration_minutes, grace_minutes, late_after_minutes,
    present_percent, heartbeat_stale_seconds,
    scheduled_at_ms + (duration_minutes + grace_minutes) * 60000, timezone,
    teacher_present_percent, has_roster, created_at_ms, updated_at_ms
FROM sessions ORDER BY created_at_ms, room;

CREATE TABLE roster_v5 (
    session_id BIGINT NOT NULL,
    identity   TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    role       TEXT NOT NULL DEFAULT 'student',  -- student | teacher
    PRIMARY KEY (session_id, identity)
);
INSERT INTO roster_v5 (session_id, identity, name, role)
SELECT s.id, r.identity, r.name, r.role FROM roster r JOIN sessions_v5 s ON s.room = r.room;

CREATE TABLE attendance_overrides_v5 (
    session_id    BIGINT NOT NULL,
    room          TEXT NOT NULL,
    identity      TEXT NOT NULL,
    status        TEXT NOT NULL,               -- present | late | partial | absent | excused
    reason        TEXT NOT NULL,
    author        TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (session_id, identity)
);
INSERT INTO attendance_overrides_v5 (session_id, room, identity, status, reason, author, created_at_ms)
SELECT s.id, o.room, o.identity, o.status, o.reason, o.author, o.created_at_ms
FROM attendance_overrides o JOIN sessions_v5 s ON s.room = o.room;

ALTER TABLE override_audit ADD COLUMN session_id BIGINT;
UPDATE override_audit SET session_id = (SELECT s.id FROM sessions_v5 s WHERE s.room = override_audit.room);
CREATE INDEX override_audit_by_session ON override_audit (session_id);

DROP TABLE attendance_overrides;
ALTER TABLE attendance_overrides_v5 RENAME TO attendance_overrides;
DROP TABLE roster;
ALTER TABLE roster_v5 RENAME TO roster;
DROP TABLE sessions;
ALTER TABLE sessions_v5 RENAME TO sessions;
CREATE INDEX sessions_by_time ON sessions (scheduled_at_ms);
CREATE INDEX sessions_by_room ON sessions (room, scheduled_at_ms);
CREATE INDEX sessions_by_class ON sessions (class_id, occurrence_ms);
-- One unscheduled session per LiveKit room instance.
CREATE UNIQUE INDEX sessions_by_instance ON sessions (room_sid) WHERE room_sid <> '';
CREATE INDEX cycles_by_instance ON cycles (room_sid);

-- Classes (courses): recurring slots that produce lessons in one room.
CREATE TABLE classes (
    id                      BIGSERIAL PRIMARY KEY,
    room                    TEXT NOT NULL,
    title                   TEXT NOT NULL DEFAULT '',
    timezone                TEXT NOT NULL,
    starts_on               TEXT NOT NULL,     -- YYYY-MM-DD, in the class's zone
    ends_on                 TEXT NOT NULL,
    slots                   TEXT NOT NULL,     -- JSON: [{"rrule", "start", "duration_minutes"}]
    cancelled               TEXT NOT NULL DEFAULT '[]', -- JSON: ["YYYY-MM-DD", …]
    grace_minutes           BIGINT NOT NULL,
    late_after_minutes      BIGINT NOT NULL,
    present_percent         BIGINT NOT NULL,
    teacher_present_percent BIGINT NOT NULL,
    heartbeat_stale_seconds BIGINT NOT NULL,
    has_roster              BIGINT NOT NULL DEFAULT 0,
    created_at_ms           BIGINT NOT NULL,
    updated_at_ms           BIGINT NOT NULL
);
CREATE TABLE class_roster (
    class_id BIGINT NOT NULL,
    identity TEXT NOT NULL,
    name     TEXT NOT NULL DEFAULT '',
    role     TEXT NOT NULL DEFAULT 'student',
    PRIMARY KEY (class_id, identity)
);
