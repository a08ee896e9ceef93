-- Rosters, roles, teacher corrections and time zones.

ALTER TABLE sessions ADD COLUMN timezone TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN teacher_present_percent INTEGER NOT NULL DEFAULT 90;
-- 1 once a roster was set (an empty roster is still a roster).
ALTER TABLE sessions ADD COLUMN has_roster INTEGER NOT NULL DEFAULT 0;

-- LiveKit participant attributes (JSON object), for roles such as observer.
ALTER TABLE cycles ADD COLUMN attributes TEXT NOT NULL DEFAULT '';

CREATE TABLE roster (
    room     TEXT NOT NULL,
    identity TEXT NOT NULL,
    name     TEXT NOT NULL DEFAULT '',
    role     TEXT NOT NULL DEFAULT 'student',  -- student | teacher
    PRIMARY KEY (room, identity)
);

-- A teacher's correction; the computed status stays beside it.
CREATE TABLE attendance_overrides (
    room          TEXT NOT NULL,
    identity      TEXT NOT NULL,
    status        TEXT NOT NULL,               -- present | late | partial | absent | excused
    reason        TEXT NOT NULL,
    author        TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (room, identity)
);

-- Every change to an override, kept for administrators.
CREATE TABLE override_audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    room     TEXT NOT NULL,
    identity TEXT NOT NULL,
    action   TEXT NOT NULL,                    -- set | remove
    status   TEXT,
    reason   TEXT NOT NULL,
    author   TEXT NOT NULL,
    at_ms    INTEGER NOT NULL
);
CREATE INDEX override_audit_by_room ON override_audit (room, identity);
CREATE INDEX sessions_by_time ON sessions (scheduled_at_ms);
CREATE INDEX cycles_by_identity ON cycles (identity);
