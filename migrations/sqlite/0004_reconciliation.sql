-- How each cycle began and ended, as LiveKit or reconciliation told it.
-- disconnect_reason: LiveKit's own (CLIENT_INITIATED, PARTICIPANT_REMOVED, …)
-- from participant_left / participant_connection_aborted; '' when not given.
-- opened_by: 'webhook', or 'reconciled' when LiveKit's RoomService listed a
-- participant whose participant_joined never arrived.
-- seen_at_ms: the last reconciliation check at which LiveKit listed the
-- connection; a cycle LiveKit no longer lists is closed there.
ALTER TABLE cycles ADD COLUMN disconnect_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE cycles ADD COLUMN opened_by TEXT NOT NULL DEFAULT 'webhook';
ALTER TABLE cycles ADD COLUMN seen_at_ms INTEGER;

-- One reconciliation per room per interval across all instances: an
-- instance checks a room only if it moved next_at_ms forward itself.
CREATE TABLE reconcile_checks (
    room       TEXT PRIMARY KEY,
    next_at_ms INTEGER NOT NULL
);
