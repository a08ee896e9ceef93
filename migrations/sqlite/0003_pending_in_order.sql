-- The processor claims pending webhooks oldest first. With a backlog (a
-- burst of webhooks), walking this index in order reads only the claimed
-- rows, instead of reading and sorting every pending one on each claim.
CREATE INDEX webhook_events_pending_in_order ON webhook_events (created_at_ms, received_at_ms, id)
    WHERE status = 'pending';
