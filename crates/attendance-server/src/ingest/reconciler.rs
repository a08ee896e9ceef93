//! Reconciliation with LiveKit's RoomService. LiveKit does not promise to
//! deliver webhooks (a lost `participant_left` would credit a student who
//! left; a lost `participant_joined` would lose real time), so for every room
//! in its counting window, and every room with an open cycle, the service
//! asks LiveKit who is there and makes the stored facts agree: what to change
//! is decided by [`attendance_livekit::reconcile::plan`], which never credits
//! time that is not proven.
//!
//! A failed call changes no fact: it is logged once per room and state
//! change, counted, and retried with backoff. With several instances each
//! room is checked by one of them per interval (a claim in the store), and
//! each instance paces its calls (`--reconcile-rate`).

use std::collections::HashMap;
use std::time::Duration;

use attendance_livekit::model::{ParticipantInfo, ParticipantKind, ParticipantState, Room};
use attendance_livekit::reconcile::{plan, Action, FoundParticipant, LiveKitView, OpenCycle};
use attendance_livekit::RoomServiceClient;
use tokio::sync::watch;
use tokio::time::{interval, Interval, MissedTickBehavior};

use super::Ingest;
use crate::domain::{now_ms, CycleFact, CycleRow, MediaFact, Reconciled, MEDIA_SOURCES};
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// LiveKit's URL (`wss://…` maps to `https://…`).
    pub livekit_url: String,
    /// The API key and secret the service signs its RoomService tokens with.
    pub api_key: String,
    pub api_secret: String,
    /// How often each room is checked.
    pub interval: Duration,
    /// Most calls to LiveKit per second, from this instance.
    pub rate: f64,
}

/// Longest wait after repeated failures.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Names per `ListRooms` call.
const ROOMS_PER_LIST: usize = 100;

pub async fn run(ingest: Ingest, settings: ReconcileSettings, mut shutdown: watch::Receiver<bool>) {
    let client = match RoomServiceClient::new(
        &settings.livekit_url,
        &settings.api_key,
        &settings.api_secret,
    ) {
        Ok(client) => client.with_timeout(Duration::from_secs(5)),
        Err(error) => {
            tracing::error!(%error, "reconciliation disabled: bad LiveKit URL");
            return;
        }
    };
    tracing::info!(url = %client.base_url(), every = ?settings.interval, "reconciling with LiveKit's RoomService");
    let mut reconciler = Reconciler {
        ingest,
        client,
        pace: pace(settings.rate),
        failures: HashMap::new(),
        settings,
    };
    let mut ticker = interval(reconciler.settings.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            result = reconciler.pass() => if let Err(error) = result {
                tracing::warn!(%error, "reconciliation skipped: store unavailable");
            },
            _ = shutdown.changed() => return,
        }
    }
}

fn pace(rate: f64) -> Interval {
    let every = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let mut pace = interval(every);
    pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
    pace
}

struct Reconciler {
    ingest: Ingest,
    client: RoomServiceClient,
    settings: ReconcileSettings,
    /// Calls to LiveKit wait their turn here.
    pace: Interval,
    /// Consecutive failures per room ("" for `ListRooms`), with the last
    /// error's label: logged when the state changes, not on every failure.
    failures: HashMap<String, (u32, &'static str)>,
}

impl Reconciler {
    /// Checks every room that is due and is this instance's to check.
    async fn pass(&mut self) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let next = now + (self.settings.interval.as_millis() as i64) * 9 / 10;
        let mut mine = Vec::new();
        for room in self.ingest.store.reconcile_targets(now).await? {
            if self.ingest.store.claim_reconcile(&room, now, next).await? {
                mine.push(room);
            }
        }
        for rooms in mine.chunks(ROOMS_PER_LIST) {
            self.pace.tick().await;
            let listed = match self.client.list_rooms(rooms).await {
                Ok(listed) => {
                    self.succeeded("");
                    listed
                }
                Err(error) => {
                    let delay = self.failed("", error.label(), &error.to_string());
                    for room in rooms {
                        self.ingest
                            .store
                            .defer_reconcile(room, now_ms() + delay)
                            .await?;
                    }
                    continue;
                }
            };
            for room in rooms {
                let listing = listed.iter().find(|r| &r.name == room);
                self.check(room, listing).await?;
            }
        }
        Ok(())
    }

    /// One room: asks who is there (when the room exists), then applies
    /// what the plan says.
    async fn check(&mut self, room: &str, listing: Option<&Room>) -> Result<(), sqlx::Error> {
        let checked_at = now_ms();
        let participants = match listing {
            None => None,
            Some(_) => {
                self.pace.tick().await;
                match self.client.list_participants(room).await {
                    Ok(participants) => Some(participants),
                    Err(error) => {
                        let delay = self.failed(room, error.label(), &error.to_string());
                        return self
                            .ingest
                            .store
                            .defer_reconcile(room, now_ms() + delay)
                            .await;
                    }
                }
            }
        };
        self.succeeded(room);
        Metrics::inc(&self.ingest.metrics.reconcile_checks);
        let open = self.ingest.store.open_cycles_in_room(room).await?;
        let open: Vec<OpenCycle> = open.iter().map(open_cycle).collect();
        let view = match (listing, &participants) {
            (Some(listed), Some(participants)) => LiveKitView::room_listed(listed, participants),
            _ => LiveKitView::room_absent(),
        };
        if self.ingest.settings.engagement {
            if let Some(participants) = &participants {
                self.note_tracks(room, participants, checked_at).await?;
            }
        }
        let room_sid = listing.map_or("", |r| r.sid.as_str());
        let found = facts_of(plan(&open, &view, checked_at), room, room_sid);
        if found.closed.is_empty() && found.opened.is_empty() && found.seen.is_empty() {
            return Ok(());
        }
        let changed = self
            .ingest
            .store
            .apply_reconciliation(room, &found, now_ms())
            .await?;
        for (sid, identity, at_ms) in &found.closed {
            tracing::info!(room, identity, participant_sid = %sid, close_at_ms = at_ms, "cycle closed: LiveKit no longer lists it");
        }
        for (fact, _) in &found.opened {
            tracing::info!(room, identity = %fact.identity, participant_sid = %fact.participant_sid, "cycle opened: LiveKit lists a participant no webhook told of");
        }
        let metrics = &self.ingest.metrics;
        metrics.add(&metrics.reconcile_closed, found.closed.len() as u64);
        metrics.add(&metrics.reconcile_opened, found.opened.len() as u64);
        for identity in changed {
            self.ingest.live.changed(room, Some(&identity));
        }
        Ok(())
    }

    /// What RoomService lists about cameras, microphones and screen shares,
    /// as media facts where it differs from what is known: a track no webhook
    /// announced is published, a mute flag that changed is a mute or unmute
    /// (muting sends no webhook), a known track no longer listed for a
    /// listed connection is unpublished.
    async fn note_tracks(
        &self,
        room: &str,
        participants: &[ParticipantInfo],
        at_ms: i64,
    ) -> Result<(), sqlx::Error> {
        let known = self.ingest.store.media_states(room).await?;
        let mut facts = Vec::new();
        for p in participants.iter().filter(|p| p.is_connected()) {
            let fact = |track: &str, source: &str, change: &str| MediaFact {
                room: room.to_string(),
                participant_sid: p.sid.clone(),
                identity: p.identity.clone(),
                track_sid: track.to_string(),
                source: source.to_string(),
                change: change.to_string(),
                at_ms,
                origin: "room_service".to_string(),
            };
            let mut listed = Vec::new();
            for track in &p.tracks {
                let source = track.source.as_str();
                if !MEDIA_SOURCES.contains(&source) {
                    continue;
                }
                listed.push(track.sid.as_str());
                match known.get(&(p.sid.clone(), track.sid.clone())) {
                    Some(state) if state.published && state.muted == track.muted => {}
                    Some(state) if state.published => {
                        let change = if track.muted { "muted" } else { "unmuted" };
                        facts.push(fact(&track.sid, source, change));
                    }
                    _ => {
                        facts.push(fact(&track.sid, source, "published"));
                        if track.muted {
                            facts.push(fact(&track.sid, source, "muted"));
                        }
                    }
                }
            }
            for ((sid, track), state) in &known {
                if sid == &p.sid && state.published && !listed.contains(&track.as_str()) {
                    facts.push(fact(track, &state.source, "unpublished"));
                }
            }
        }
        self.ingest.store.record_media(&facts).await.map(drop)
    }

    /// Records a failure; returns how long to wait before asking again.
    fn failed(&mut self, room: &str, label: &'static str, error: &str) -> i64 {
        self.ingest.metrics.reconcile_failed(label);
        let entry = self.failures.entry(room.to_string()).or_insert((0, ""));
        if entry.0 == 0 || entry.1 != label {
            if room.is_empty() {
                tracing::warn!(reason = label, %error, "LiveKit's ListRooms failed; no fact changed, retrying with backoff");
            } else {
                tracing::warn!(room, reason = label, %error, "LiveKit's ListParticipants failed; no fact changed, retrying with backoff");
            }
        }
        entry.0 += 1;
        entry.1 = label;
        let backoff = self
            .settings
            .interval
            .saturating_mul(1 << entry.0.min(6))
            .min(MAX_BACKOFF);
        backoff.as_millis() as i64
    }

    fn succeeded(&mut self, room: &str) {
        if self.failures.remove(room).is_some() {
            tracing::info!(room, "LiveKit answers again; reconciliation resumed");
        }
    }
}

/// The rules' view of an open cycle. Its last-seen instant is the last check
/// that listed it; a cycle no check ever listed falls back to its newest
/// heartbeat after the join (the page was open), else to the join itself.
fn open_cycle((cycle, heartbeat_ms): &(CycleRow, Option<i64>)) -> OpenCycle {
    let joined_at_ms = cycle.joined_at.map_or(0, |t| t.timestamp_millis());
    let seen = cycle.seen_at.map(|t| t.timestamp_millis());
    OpenCycle {
        participant_sid: cycle.participant_sid.clone(),
        identity: cycle.identity.clone(),
        joined_at_ms,
        last_seen_ms: seen.or(heartbeat_ms.filter(|&beat| beat > joined_at_ms)),
    }
}

/// The plan as facts to store. Only connected (`ACTIVE`) participants open a
/// cycle, as only they would have had a `participant_joined`.
fn facts_of(actions: Vec<Action>, room: &str, room_sid: &str) -> Reconciled {
    let mut found = Reconciled::default();
    for action in actions {
        match action {
            Action::Seen {
                participant_sid,
                at_ms,
            } => found.seen.push((participant_sid, at_ms)),
            Action::Close {
                participant_sid,
                identity,
                at_ms,
                ..
            } => found.closed.push((participant_sid, identity, at_ms)),
            Action::Open(p) if p.state == ParticipantState::Active => {
                let seen_at_ms = p.seen_at_ms;
                found
                    .opened
                    .push((cycle_fact(p, room, room_sid), seen_at_ms));
            }
            Action::Open(_) => {}
        }
    }
    found
}

fn cycle_fact(p: FoundParticipant, room: &str, room_sid: &str) -> CycleFact {
    CycleFact {
        participant_sid: p.participant_sid,
        room: room.to_string(),
        room_sid: room_sid.to_string(),
        identity: p.identity,
        name: p.name,
        // Stored as webhooks carry it: STANDARD is protojson's omitted zero.
        kind: match p.kind {
            ParticipantKind::Standard => String::new(),
            other => other.as_str().to_string(),
        },
        metadata: p.metadata,
        attributes: if p.attributes.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&p.attributes).expect("a map of strings serializes")
        },
        joined_at_ms: Some(p.joined_at_ms),
        disconnect_reason: String::new(),
    }
}
