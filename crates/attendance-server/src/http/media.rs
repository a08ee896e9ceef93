//! Mute and unmute reported by a participant's own page over the live
//! socket: `{"type":"media","participant_sid":"PA_…","tracks":[{"sid":"TR_…",
//! "source":"camera","muted":true}]}` (livekit-client's `Track.Source`
//! names, any case). LiveKit sends no webhook when a track is muted, so
//! the page is one of the sources of mute state; its word is kept as a
//! fact of origin `tracker` at the instant the server receives it, and the
//! rules never let it extend time beyond what LiveKit said was published.

use serde::Deserialize;

use super::error::ApiError;
use super::App;
use crate::domain::{now_ms, MediaFact};
use crate::livekit::Principal;

/// Tracks one message may report (a camera, a microphone, screen shares).
const MAX_TRACKS: usize = 8;
/// Longest participant or track sid accepted (LiveKit's are ~15 chars).
const MAX_SID: usize = 64;

#[derive(Debug, Deserialize)]
pub struct MediaReport {
    #[serde(default)]
    pub participant_sid: String,
    #[serde(default)]
    pub tracks: Vec<TrackReport>,
}

#[derive(Debug, Deserialize)]
pub struct TrackReport {
    pub sid: String,
    pub source: String,
    pub muted: bool,
}

/// livekit-client's source names (`camera`, `screen_share`, …) as the
/// facts spell them; `None` for sources not counted.
fn source(name: &str) -> Option<&'static str> {
    match name.to_ascii_lowercase().as_str() {
        "camera" => Some("CAMERA"),
        "microphone" => Some("MICROPHONE"),
        "screen_share" | "screenshare" => Some("SCREEN_SHARE"),
        _ => None,
    }
}

/// Keeps what the page reported; returns how many track states were kept
/// (none with engagement off, for the service or for the lesson).
pub async fn record(
    app: &App,
    room: &str,
    who: &Principal,
    report: &MediaReport,
) -> Result<usize, ApiError> {
    if !who.belongs_to(room) || who.identity.is_empty() {
        return Err(ApiError::forbidden(
            "this token is not a participant of this room",
        ));
    }
    let sid = report.participant_sid.as_str();
    if sid.is_empty() || sid.len() > MAX_SID || report.tracks.len() > MAX_TRACKS {
        return Err(ApiError::bad_request(
            "media: a participant_sid and at most 8 tracks",
        ));
    }
    if !app.settings.classifier.engagement {
        return Ok(0);
    }
    let at_ms = now_ms();
    let facts: Vec<MediaFact> = report
        .tracks
        .iter()
        .filter(|t| !t.sid.is_empty() && t.sid.len() <= MAX_SID)
        .filter_map(|t| {
            Some(MediaFact {
                room: room.to_string(),
                participant_sid: sid.to_string(),
                identity: who.identity.clone(),
                track_sid: t.sid.clone(),
                source: source(&t.source)?.to_string(),
                change: if t.muted { "muted" } else { "unmuted" }.to_string(),
                at_ms,
                origin: "tracker".to_string(),
            })
        })
        .collect();
    if facts.is_empty() {
        return Ok(0);
    }
    let kept = app.store.record_media(&facts).await?;
    if kept > 0 {
        app.live.changed(room, Some(&who.identity));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::source;

    #[test]
    fn livekit_client_source_names() {
        assert_eq!(source("camera"), Some("CAMERA"));
        assert_eq!(source("MICROPHONE"), Some("MICROPHONE"));
        assert_eq!(source("screen_share"), Some("SCREEN_SHARE"));
        assert_eq!(source("screen_share_audio"), None);
        assert_eq!(source("unknown"), None);
    }
}
