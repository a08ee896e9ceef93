//! Camera, microphone and screen-share time: how long each was on while the
//! participant was counted present.
//!
//! A track is *on* while it is published and not muted. LiveKit says when a
//! track was published and unpublished (webhooks, RoomService); muting sends
//! no webhook, so mute and unmute come from RoomService's `muted` flags or
//! from the participant's own page. Whoever reports a mute, only LiveKit
//! opens and closes a published span: a page's word never extends time
//! beyond what LiveKit says was published. On-time counts only inside the
//! counting window and inside the presence of the connection that published
//! the track, and several devices at once count once (the union).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{union_length_ms, Cycle, Interval, Schedule};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MediaSource {
    Camera,
    Microphone,
    ScreenShare,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaChange {
    Published,
    Unpublished,
    Muted,
    Unmuted,
}

/// One change of one track, as a fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaEvent {
    /// The connection (LiveKit participant sid) that published the track.
    pub participant_sid: String,
    pub track_sid: String,
    pub source: MediaSource,
    pub change: MediaChange,
    pub at: DateTime<Utc>,
    /// Said by LiveKit (webhook, RoomService), not by the page: only LiveKit
    /// publishes and unpublishes.
    #[serde(default = "yes")]
    pub from_livekit: bool,
}

fn yes() -> bool {
    true
}

/// Seconds each source was on, inside the window and the presence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaTime {
    pub camera_seconds: i64,
    pub microphone_seconds: i64,
    pub screen_share_seconds: i64,
}

/// One connection: its LiveKit participant sid and its cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub participant_sid: String,
    pub cycle: Cycle,
}

/// Media time for one person from their connections and media facts, at
/// `now` (after the window end, final). Presence is what [`crate::compute`]
/// counts: a cycle to its leave, to its last heartbeat when heartbeats went
/// stale, else to now, clipped to the window.
pub fn media_time(
    schedule: &Schedule,
    connections: &[Connection],
    last_heartbeat_at: Option<DateTime<Utc>>,
    events: &[MediaEvent],
    now: DateTime<Utc>,
) -> MediaTime {
    let window = schedule.window();
    let effective_now = now.min(window.end);
    let stale =
        last_heartbeat_at.is_some_and(|beat| effective_now - beat > schedule.heartbeat_stale());
    let presence = |sid: &str| -> Vec<Interval> {
        connections
            .iter()
            .filter(|c| c.participant_sid == sid)
            .filter_map(|c| {
                let end = match (c.cycle.left_at, last_heartbeat_at) {
                    (Some(left), _) => left,
                    (None, Some(beat)) if stale => beat,
                    (None, _) => effective_now,
                };
                window.clip(c.cycle.joined_at, end)
            })
            .collect()
    };
    let mut on: [Vec<Interval>; 3] = Default::default();
    let mut tracks: Vec<(&str, &str, MediaSource)> = events
        .iter()
        .map(|e| (e.participant_sid.as_str(), e.track_sid.as_str(), e.source))
        .collect();
    tracks.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    tracks.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));
    for (sid, track, source) in tracks {
        let mut changes: Vec<&MediaEvent> = events
            .iter()
            .filter(|e| e.participant_sid == sid && e.track_sid == track)
            .collect();
        changes.sort_by_key(|e| e.at);
        let spans = on_spans(&changes, effective_now);
        let slot = &mut on[source as usize];
        for present in presence(sid) {
            for span in &spans {
                let start = span.start.max(present.start);
                let end = span.end.min(present.end);
                if start < end {
                    slot.push(Interval { start, end });
                }
            }
        }
    }
    let seconds = |spans: &[Interval]| union_length_ms(spans) / 1000;
    MediaTime {
        camera_seconds: seconds(&on[MediaSource::Camera as usize]),
        microphone_seconds: seconds(&on[MediaSource::Microphone as usize]),
        screen_share_seconds: seconds(&on[MediaSource::ScreenShare as usize]),
    }
}

/// Which sources the participant's own page has on (published and not
/// muted) right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaOn {
    #[serde(default)]
    pub camera: bool,
    #[serde(default)]
    pub microphone: bool,
    #[serde(default)]
    pub screen_share: bool,
}

/// Media time at `now` as a page shows it between two reports: the figures
/// [`media_time`] gave at `as_of`, plus, for each source the page has on,
/// the time since — only while the participant is in the meeting and only
/// inside the counting window, so a page left open after the lesson never
/// counts on. The next report replaces the estimate.
pub fn media_time_since(
    schedule: &Schedule,
    reported: MediaTime,
    as_of: DateTime<Utc>,
    on: MediaOn,
    in_meeting: bool,
    now: DateTime<Utc>,
) -> MediaTime {
    let window = schedule.window();
    let since = (now.min(window.end) - as_of.max(window.start)).num_milliseconds();
    let extra = if in_meeting { since.max(0) / 1000 } else { 0 };
    let add = |seconds: i64, on: bool| if on { seconds + extra } else { seconds };
    MediaTime {
        camera_seconds: add(reported.camera_seconds, on.camera),
        microphone_seconds: add(reported.microphone_seconds, on.microphone),
        screen_share_seconds: add(reported.screen_share_seconds, on.screen_share),
    }
}

/// When one track was on (published and unmuted), in unix ms, up to `until`
/// for a span still open.
fn on_spans(changes: &[&MediaEvent], until: DateTime<Utc>) -> Vec<Interval> {
    let mut spans = Vec::new();
    let (mut published, mut muted) = (false, false);
    let mut on_since: Option<i64> = None;
    for event in changes {
        match (event.change, event.from_livekit) {
            (MediaChange::Published, true) => {
                published = true;
                muted = false;
            }
            (MediaChange::Unpublished, true) => published = false,
            (MediaChange::Published | MediaChange::Unpublished, false) => continue,
            (MediaChange::Muted, _) => muted = true,
            (MediaChange::Unmuted, _) => muted = false,
        }
        let at = event.at.timestamp_millis();
        match (on_since, published && !muted) {
            (None, true) => on_since = Some(at),
            (Some(start), false) => {
                if start < at {
                    spans.push(Interval { start, end: at });
                }
                on_since = None;
            }
            _ => {}
        }
    }
    if let Some(start) = on_since {
        let end = until.timestamp_millis();
        if start < end {
            spans.push(Interval { start, end });
        }
    }
    spans
}
