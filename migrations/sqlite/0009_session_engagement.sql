-- A lesson may turn engagement off ("engagement": false in PUT /api/sessions/{room}):
-- then no camera, microphone or screen-share fact (LiveKit's track webhooks,
-- RoomService's muted flags, a page's mute reports) is kept inside its
-- window, and its reports show none. 1 = on (the default), 0 = off.
ALTER TABLE sessions ADD COLUMN engagement INTEGER NOT NULL DEFAULT 1;
