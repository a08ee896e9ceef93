-- Every join wrote an entry into this index, each into a page of its own
-- (identities are spread over the whole index), so a batch of webhooks
-- wrote as many pages of it as it had joins. Its one reader, a student's
-- history, finds the student's rooms through cycles_by_room (room,
-- identity) instead.
DROP INDEX cycles_by_identity;
