-- Cameras, microphones and screen shares turning on and off, per connection
-- and track, with who said so: LiveKit's track_published/track_unpublished
-- webhooks ('webhook'), its RoomService's muted flags ('room_service'), or
-- the participant's own page reporting mute and unmute ('tracker'). Media
-- time is computed from these by attendance-rules; a page's word never
-- extends time beyond what LiveKit says was published.
CREATE TABLE media_facts (
    id              BIGSERIAL PRIMARY KEY,
    room            TEXT NOT NULL,
    participant_sid TEXT NOT NULL,
    identity        TEXT NOT NULL,
    track_sid       TEXT NOT NULL,
    source          TEXT NOT NULL,   -- CAMERA | MICROPHONE | SCREEN_SHARE
    change          TEXT NOT NULL,   -- published | unpublished | muted | unmuted
    at_ms           BIGINT NOT NULL,
    origin          TEXT NOT NULL    -- webhook | room_service | tracker
);
CREATE INDEX media_facts_by_room ON media_facts (room, identity);
