-- Lessons and outbound webhooks together: the final result last announced
-- is kept per session (lesson), no longer per room. A room's announced
-- digest moves to its one session (before lessons, a room had one).
-- A database that had 0006 before 0005 lost `sessions_by_update` when 0005
-- rebuilt `sessions`: it is made again.

CREATE TABLE outbound_finals_v8 (
    session_id     BIGINT PRIMARY KEY,
    room           TEXT NOT NULL,
    digest         TEXT NOT NULL,
    computed_at_ms BIGINT NOT NULL,                  -- when the facts behind it were read
    sent_at_ms     BIGINT NOT NULL
);
INSERT INTO outbound_finals_v8 (session_id, room, digest, computed_at_ms, sent_at_ms)
SELECT s.id, f.room, f.digest, f.computed_at_ms, f.sent_at_ms
FROM outbound_finals f
JOIN sessions s ON s.room = f.room
    AND s.id = (SELECT MIN(s2.id) FROM sessions s2 WHERE s2.room = f.room);
DROP TABLE outbound_finals;
ALTER TABLE outbound_finals_v8 RENAME TO outbound_finals;

CREATE INDEX IF NOT EXISTS sessions_by_update ON sessions (updated_at_ms);
