//! Reconciliation planning: what to change in the service's cycles so they
//! agree with what LiveKit says now. Pure — no I/O, no clock: the caller asks
//! LiveKit, passes the answers and the check's instant, and applies the
//! actions.
//!
//! Webhooks can be lost (LiveKit keeps its queue in memory, drops events that
//! waited over 30 s and gives up after ~15 s of failed deliveries), so a
//! service that only listens can hold a cycle open for someone long gone, or
//! miss someone who is there. A periodic check per room, with
//! [`plan`], repairs both without ever crediting time that is not proven:
//!
//! | here (open cycle) | LiveKit | action |
//! |---|---|---|
//! | open | lists the sid (not `DISCONNECTED`) | [`Action::Seen`] at `now` |
//! | open | absence proven (below) | [`Action::Close`] at the last instant LiveKit was seen to list it |
//! | open | absence not proven | nothing |
//! | none | lists the sid (not `DISCONNECTED`) | [`Action::Open`], found by reconciliation |
//!
//! ## When is a participant's absence proven?
//!
//! A default self-hosted LiveKit answers `ListParticipants` for a room it does
//! not know with **200 and an empty list** — the same answer as for a room
//! that exists and is empty, and the answer a multi-node deployment may give
//! from a node that does not hold the room. An empty list *alone* therefore
//! proves nothing, and never closes anything. Absence is proven when:
//!
//! 1. `ListRooms` does not list the room ([`RoomListing::Absent`]): the room
//!    instance is over, and so is every connection to it; or
//! 2. `ListRooms` lists the room and `ListParticipants` (asked after it)
//!    answered, and either its list is not empty — the server does hold the
//!    room, so its roster is the truth and anyone missing from it (or listed
//!    as `DISCONNECTED`) is gone — or the list is empty **and** `ListRooms`
//!    said `num_participants` is 0: the room exists and is empty, so closing
//!    is correct.
//!
//! A room listed with `num_participants > 0` but an empty participant list is
//! a contradiction (people left between the two calls, or the answer came
//! from a node without the room): nothing is closed, and the next check
//! decides. Waiting costs nothing in credited time, because a close is dated
//! at the last instant LiveKit was *seen* to list the participant, not at the
//! instant the absence was noticed.
//!
//! Ask `ListRooms` first and `ListParticipants` second: a participant listed
//! by the later call is there, whatever the earlier one said.
//!
//! ## Times
//!
//! - A close is dated at the cycle's `last_seen_ms` (the previous check that
//!   listed the sid), or at its `joined_at_ms` if no check ever listed it —
//!   never later than `now_ms` and never earlier than the join. So a repair
//!   never credits time beyond what is proven.
//! - An open starts at LiveKit's `joined_at_ms` (else `joined_at` × 1000; else
//!   `now_ms`), never later than `now_ms`; record `now_ms` as its last-seen
//!   instant ([`FoundParticipant::seen_at_ms`]).
//! - A seen participant's last-seen instant becomes `now_ms`.
//!
//! Participants of every kind are reported with their [`ParticipantKind`]:
//! whether agents, egress or SIP participants count is the caller's call.

use std::collections::{BTreeMap, HashSet};

use crate::model::{ParticipantInfo, ParticipantKind, ParticipantState, Room};

/// The reason recorded on cycles this module opens or closes.
pub const RECONCILED: &str = "reconciled";

/// A cycle the service holds open for the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCycle {
    /// LiveKit's participant sid (`PA_…`), which keys the cycle.
    pub participant_sid: String,
    pub identity: String,
    /// When the participant joined, unix ms.
    pub joined_at_ms: i64,
    /// The last check instant (unix ms) at which LiveKit listed this sid, if
    /// any check ever did.
    pub last_seen_ms: Option<i64>,
}

/// What `ListRooms` said about the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomListing<'a> {
    /// `ListRooms` answered and does not list the room.
    Absent,
    /// `ListRooms` listed the room (with its `num_participants`).
    Listed(&'a Room),
    /// `ListRooms` was not asked, or failed: nothing can be closed.
    Unknown,
}

/// Both answers LiveKit gave for one room in one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveKitView<'a> {
    pub room: RoomListing<'a>,
    /// `ListParticipants`' answer, asked after `ListRooms`; `None` when it was
    /// not asked (the room was absent) or failed.
    pub participants: Option<&'a [ParticipantInfo]>,
}

impl<'a> LiveKitView<'a> {
    /// `ListRooms` does not list the room.
    pub fn room_absent() -> Self {
        LiveKitView {
            room: RoomListing::Absent,
            participants: None,
        }
    }

    /// `ListRooms` listed `room`, then `ListParticipants` answered `participants`.
    pub fn room_listed(room: &'a Room, participants: &'a [ParticipantInfo]) -> Self {
        LiveKitView {
            room: RoomListing::Listed(room),
            participants: Some(participants),
        }
    }

    /// Does this view prove that an open cycle LiveKit does not list is over?
    /// See the module documentation.
    pub fn proves_absence(&self) -> bool {
        match (self.room, self.participants) {
            (RoomListing::Absent, _) => true,
            (RoomListing::Listed(room), Some(list)) => {
                !list.is_empty() || room.num_participants == 0
            }
            (RoomListing::Listed(_), None) | (RoomListing::Unknown, _) => false,
        }
    }
}

/// A participant LiveKit lists and the service has no open cycle for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundParticipant {
    pub participant_sid: String,
    pub identity: String,
    pub name: String,
    pub kind: ParticipantKind,
    pub state: ParticipantState,
    pub metadata: String,
    pub attributes: BTreeMap<String, String>,
    /// When the cycle starts, unix ms (see the module documentation).
    pub joined_at_ms: i64,
    /// The check's instant: record it as the cycle's last-seen instant.
    pub seen_at_ms: i64,
    /// Always [`RECONCILED`]: this cycle was found by a check, not a webhook.
    pub reason: &'static str,
}

/// One change to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Close the open cycle of `participant_sid` at `at_ms`.
    Close {
        participant_sid: String,
        identity: String,
        at_ms: i64,
        /// Always [`RECONCILED`].
        reason: &'static str,
    },
    /// Open a cycle for a participant LiveKit lists.
    Open(FoundParticipant),
    /// LiveKit lists the open cycle's participant: record `at_ms` as its
    /// last-seen instant (recording it twice is harmless).
    Seen { participant_sid: String, at_ms: i64 },
}

/// Plans the actions that make the service's `open` cycles for one room agree
/// with what LiveKit says about it at `now_ms` (see the module documentation
/// for the rules). Cycles are keyed by participant sid: a repeated sid in
/// `open` (or in LiveKit's list) is taken once, the first time. Actions come
/// in the order of `open` (a `Seen` or a `Close` each, or nothing), then the
/// `Open`s in LiveKit's order.
pub fn plan(open: &[OpenCycle], livekit: &LiveKitView<'_>, now_ms: i64) -> Vec<Action> {
    let mut listed: Vec<&ParticipantInfo> = Vec::new();
    let mut listed_sids: HashSet<&str> = HashSet::new();
    for p in livekit.participants.unwrap_or_default() {
        if p.is_connected() && !p.sid.is_empty() && listed_sids.insert(p.sid.as_str()) {
            listed.push(p);
        }
    }
    let proven = livekit.proves_absence();

    let mut actions = Vec::new();
    let mut open_sids: HashSet<&str> = HashSet::new();
    for cycle in open {
        if !open_sids.insert(cycle.participant_sid.as_str()) {
            continue;
        }
        if listed_sids.contains(cycle.participant_sid.as_str()) {
            actions.push(Action::Seen {
                participant_sid: cycle.participant_sid.clone(),
                at_ms: now_ms,
            });
        } else if proven {
            actions.push(Action::Close {
                participant_sid: cycle.participant_sid.clone(),
                identity: cycle.identity.clone(),
                at_ms: close_at(cycle, now_ms),
                reason: RECONCILED,
            });
        }
    }
    for p in listed {
        if open_sids.contains(p.sid.as_str()) {
            continue;
        }
        let joined = match p.joined_at_millis() {
            0 => now_ms,
            ms => ms.min(now_ms),
        };
        actions.push(Action::Open(FoundParticipant {
            participant_sid: p.sid.clone(),
            identity: p.identity.clone(),
            name: p.name.clone(),
            kind: p.kind.clone(),
            state: p.state.clone(),
            metadata: p.metadata.clone(),
            attributes: p.attributes.clone(),
            joined_at_ms: joined,
            seen_at_ms: now_ms,
            reason: RECONCILED,
        }));
    }
    actions
}

/// The last proven instant of a cycle LiveKit no longer lists: its last-seen
/// instant, else its join; never later than `now_ms`, never before the join.
pub fn close_at(cycle: &OpenCycle, now_ms: i64) -> i64 {
    cycle
        .last_seen_ms
        .unwrap_or(cycle.joined_at_ms)
        .min(now_ms)
        .max(cycle.joined_at_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_767_000_600_000;

    fn cycle(sid: &str, joined: i64, seen: Option<i64>) -> OpenCycle {
        OpenCycle {
            participant_sid: sid.into(),
            identity: format!("id-{sid}"),
            joined_at_ms: joined,
            last_seen_ms: seen,
        }
    }

    fn participant(sid: &str, state: ParticipantState) -> ParticipantInfo {
        ParticipantInfo {
            sid: sid.into(),
            identity: format!("id-{sid}"),
            name: format!("Name {sid}"),
            state,
            joined_at: 1_767_000_000,
            joined_at_ms: 1_767_000_000_250,
            ..Default::default()
        }
    }

    fn room(num_participants: u32) -> Room {
        Room {
            sid: "RM_1".into(),
            name: "math".into(),
            num_participants,
            ..Default::default()
        }
    }

    fn close(sid: &str, at_ms: i64) -> Action {
        Action::Close {
            participant_sid: sid.into(),
            identity: format!("id-{sid}"),
            at_ms,
            reason: RECONCILED,
        }
    }

    fn seen(sid: &str) -> Action {
        Action::Seen {
            participant_sid: sid.into(),
            at_ms: NOW,
        }
    }

    #[test]
    fn open_here_absent_there_closes_at_last_seen() {
        let open = [
            cycle("PA_a", NOW - 60_000, Some(NOW - 15_000)),
            cycle("PA_b", NOW - 30_000, None),
            cycle("PA_c", NOW - 50_000, Some(NOW - 15_000)),
        ];
        let r = room(1);
        let listed = [participant("PA_c", ParticipantState::Active)];
        let actions = plan(&open, &LiveKitView::room_listed(&r, &listed), NOW);
        assert_eq!(
            actions,
            vec![
                close("PA_a", NOW - 15_000),
                close("PA_b", NOW - 30_000),
                seen("PA_c")
            ]
        );
    }

    #[test]
    fn room_absent_closes_every_open_cycle() {
        let open = [
            cycle("PA_a", NOW - 60_000, Some(NOW - 15_000)),
            cycle("PA_b", NOW - 30_000, None),
        ];
        let actions = plan(&open, &LiveKitView::room_absent(), NOW);
        assert_eq!(
            actions,
            vec![close("PA_a", NOW - 15_000), close("PA_b", NOW - 30_000)]
        );
    }

    #[test]
    fn an_empty_list_alone_closes_nothing() {
        let open = [cycle("PA_a", NOW - 60_000, Some(NOW - 15_000))];
        // ListRooms not asked (or failed): a default LiveKit answers [] for any room.
        let only_participants = LiveKitView {
            room: RoomListing::Unknown,
            participants: Some(&[]),
        };
        assert_eq!(plan(&open, &only_participants, NOW), vec![]);
        // ListRooms says people are there, ListParticipants says nobody: wait.
        let r = room(3);
        assert_eq!(plan(&open, &LiveKitView::room_listed(&r, &[]), NOW), vec![]);
        // ListRooms listed the room, ListParticipants failed: nothing is known.
        let failed = LiveKitView {
            room: RoomListing::Listed(&r),
            participants: None,
        };
        assert_eq!(plan(&open, &failed, NOW), vec![]);
    }

    #[test]
    fn an_existing_empty_room_closes() {
        let open = [cycle("PA_a", NOW - 60_000, Some(NOW - 15_000))];
        let r = room(0);
        assert_eq!(
            plan(&open, &LiveKitView::room_listed(&r, &[]), NOW),
            vec![close("PA_a", NOW - 15_000)]
        );
    }

    #[test]
    fn present_there_not_here_opens() {
        let r = room(2);
        let mut agent = participant("PA_bot", ParticipantState::Active);
        agent.kind = ParticipantKind::Agent;
        agent.joined_at_ms = 0; // a server without joined_at_ms
        agent.attributes.insert("role".into(), "bot".into());
        let listed = [participant("PA_new", ParticipantState::Active), agent];
        let actions = plan(&[], &LiveKitView::room_listed(&r, &listed), NOW);
        assert_eq!(actions.len(), 2);
        let Action::Open(found) = &actions[0] else {
            panic!("{actions:?}")
        };
        assert_eq!(found.participant_sid, "PA_new");
        assert_eq!(found.identity, "id-PA_new");
        assert_eq!(found.name, "Name PA_new");
        assert_eq!(found.kind, ParticipantKind::Standard);
        assert_eq!(found.joined_at_ms, 1_767_000_000_250);
        assert_eq!(found.seen_at_ms, NOW);
        assert_eq!(found.reason, RECONCILED);
        let Action::Open(bot) = &actions[1] else {
            panic!("{actions:?}")
        };
        assert_eq!(
            bot.kind,
            ParticipantKind::Agent,
            "other kinds are reported as-is"
        );
        assert_eq!(
            bot.joined_at_ms, 1_767_000_000_000,
            "joined_at seconds × 1000"
        );
        assert_eq!(bot.attributes["role"], "bot");
    }

    #[test]
    fn opens_never_start_in_the_future_or_at_zero() {
        let r = room(2);
        let mut ahead = participant("PA_ahead", ParticipantState::Active);
        ahead.joined_at_ms = NOW + 5_000; // LiveKit's clock is ahead of ours
        let mut unknown = participant("PA_unknown", ParticipantState::Active);
        unknown.joined_at = 0;
        unknown.joined_at_ms = 0;
        let listed = [ahead, unknown];
        let actions = plan(&[], &LiveKitView::room_listed(&r, &listed), NOW);
        for action in actions {
            let Action::Open(found) = action else {
                panic!()
            };
            assert_eq!(found.joined_at_ms, NOW);
        }
    }

    #[test]
    fn disconnected_participants_are_absent() {
        let open = [cycle("PA_a", NOW - 60_000, Some(NOW - 15_000))];
        let r = room(1);
        let listed = [
            participant("PA_a", ParticipantState::Disconnected),
            participant("PA_gone", ParticipantState::Disconnected),
        ];
        assert_eq!(
            plan(&open, &LiveKitView::room_listed(&r, &listed), NOW),
            vec![close("PA_a", NOW - 15_000)],
            "closed (the server holds the room), and no open for a leaver"
        );
    }

    #[test]
    fn joining_participants_are_present() {
        let open = [cycle("PA_a", NOW - 60_000, None)];
        let r = room(2);
        let listed = [
            participant("PA_a", ParticipantState::Joined),
            participant("PA_b", ParticipantState::Joining),
        ];
        let actions = plan(&open, &LiveKitView::room_listed(&r, &listed), NOW);
        assert_eq!(actions[0], seen("PA_a"));
        let Action::Open(found) = &actions[1] else {
            panic!()
        };
        assert_eq!(
            found.state,
            ParticipantState::Joining,
            "the state is reported"
        );
    }

    #[test]
    fn participants_listed_after_an_absent_listing_are_there() {
        // ListRooms (first) missed the room; ListParticipants (after) lists a
        // participant: the room exists now. Others are still closed.
        let open = [
            cycle("PA_a", NOW - 60_000, Some(NOW - 15_000)),
            cycle("PA_b", NOW - 60_000, Some(NOW - 15_000)),
        ];
        let listed = [participant("PA_a", ParticipantState::Active)];
        let view = LiveKitView {
            room: RoomListing::Absent,
            participants: Some(&listed),
        };
        assert_eq!(
            plan(&open, &view, NOW),
            vec![seen("PA_a"), close("PA_b", NOW - 15_000)]
        );
    }

    #[test]
    fn repeated_sids_are_taken_once() {
        let open = [
            cycle("PA_a", NOW - 60_000, Some(NOW - 15_000)),
            cycle("PA_a", NOW - 10_000, None),
        ];
        let r = room(2);
        let listed = [
            participant("PA_b", ParticipantState::Active),
            participant("PA_b", ParticipantState::Active),
            participant("", ParticipantState::Active),
        ];
        let actions = plan(&open, &LiveKitView::room_listed(&r, &listed), NOW);
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert_eq!(actions[0], close("PA_a", NOW - 15_000));
        assert!(matches!(&actions[1], Action::Open(f) if f.participant_sid == "PA_b"));
    }

    #[test]
    fn close_instants_are_clamped() {
        // last seen after now (a clock step back): now.
        assert_eq!(close_at(&cycle("x", NOW - 10, Some(NOW + 99)), NOW), NOW);
        // last seen before the join (bad data): the join.
        assert_eq!(
            close_at(&cycle("x", NOW - 10, Some(NOW - 500)), NOW),
            NOW - 10
        );
        // joined "in the future" (skew): a zero-length cycle, not a negative one.
        assert_eq!(close_at(&cycle("x", NOW + 10, None), NOW), NOW + 10);
    }

    // ---- properties ----

    fn arb_state() -> impl Strategy<Value = ParticipantState> {
        prop_oneof![
            1 => Just(ParticipantState::Joining),
            1 => Just(ParticipantState::Joined),
            3 => Just(ParticipantState::Active),
            1 => Just(ParticipantState::Disconnected),
        ]
    }

    fn arb_kind() -> impl Strategy<Value = ParticipantKind> {
        prop_oneof![
            4 => Just(ParticipantKind::Standard),
            1 => Just(ParticipantKind::Agent),
            1 => Just(ParticipantKind::Egress),
        ]
    }

    /// Open cycles over a small pool of sids (unique, as the service keys them).
    fn arb_open() -> impl Strategy<Value = Vec<OpenCycle>> {
        prop::collection::btree_map(
            0u8..8,
            (-100_000i64..100_000, prop::option::of(-100_000i64..100_000)),
            0..6,
        )
        .prop_map(|cycles| {
            cycles
                .into_iter()
                .map(|(n, (joined, seen))| OpenCycle {
                    participant_sid: format!("PA_{n}"),
                    identity: format!("user-{}", n % 3),
                    joined_at_ms: NOW + joined,
                    last_seen_ms: seen.map(|s| NOW + s),
                })
                .collect()
        })
    }

    fn arb_listed() -> impl Strategy<Value = Vec<ParticipantInfo>> {
        prop::collection::vec((0u8..8, arb_state(), arb_kind(), -200_000i64..50_000), 0..6)
            .prop_map(|ps| {
                ps.into_iter()
                    .map(|(n, state, kind, joined)| ParticipantInfo {
                        sid: format!("PA_{n}"),
                        identity: format!("user-{}", n % 3),
                        state,
                        kind,
                        joined_at_ms: NOW + joined,
                        ..Default::default()
                    })
                    .collect()
            })
    }

    #[derive(Debug, Clone)]
    enum ArbListing {
        Absent,
        Listed(u32),
        Unknown,
    }

    fn arb_listing() -> impl Strategy<Value = (ArbListing, bool)> {
        (
            prop_oneof![
                Just(ArbListing::Absent),
                (0u32..3).prop_map(ArbListing::Listed),
                Just(ArbListing::Unknown),
            ],
            any::<bool>(),
        )
    }

    fn view<'a>(
        listing: &ArbListing,
        room: &'a Room,
        asked: bool,
        listed: &'a [ParticipantInfo],
    ) -> LiveKitView<'a> {
        LiveKitView {
            room: match listing {
                ArbListing::Absent => RoomListing::Absent,
                ArbListing::Listed(_) => RoomListing::Listed(room),
                ArbListing::Unknown => RoomListing::Unknown,
            },
            participants: asked.then_some(listed),
        }
    }

    /// Applies actions to the open cycles as a caller would.
    fn apply(open: &[OpenCycle], actions: &[Action]) -> Vec<OpenCycle> {
        let mut open = open.to_vec();
        for action in actions {
            match action {
                Action::Close {
                    participant_sid, ..
                } => open.retain(|c| &c.participant_sid != participant_sid),
                Action::Seen {
                    participant_sid,
                    at_ms,
                } => {
                    for c in open
                        .iter_mut()
                        .filter(|c| &c.participant_sid == participant_sid)
                    {
                        c.last_seen_ms = Some(c.last_seen_ms.map_or(*at_ms, |s| s.max(*at_ms)));
                    }
                }
                Action::Open(found) => open.push(OpenCycle {
                    participant_sid: found.participant_sid.clone(),
                    identity: found.identity.clone(),
                    joined_at_ms: found.joined_at_ms,
                    last_seen_ms: Some(found.seen_at_ms),
                }),
            }
        }
        open
    }

    proptest! {
        #[test]
        fn closes_are_within_join_and_now(
            open in arb_open(),
            listed in arb_listed(),
            (listing, asked) in arb_listing(),
        ) {
            let r = Room { num_participants: match listing { ArbListing::Listed(n) => n, _ => 0 }, ..room(0) };
            let actions = plan(&open, &view(&listing, &r, asked, &listed), NOW);
            for action in &actions {
                match action {
                    Action::Close { participant_sid, at_ms, .. } => {
                        let c = open.iter().find(|c| &c.participant_sid == participant_sid).unwrap();
                        prop_assert!(*at_ms >= c.joined_at_ms, "{at_ms} before join {}", c.joined_at_ms);
                        if c.joined_at_ms <= NOW {
                            prop_assert!(*at_ms <= NOW, "{at_ms} after now");
                        } else {
                            prop_assert_eq!(*at_ms, c.joined_at_ms);
                        }
                        if let Some(seen) = c.last_seen_ms {
                            prop_assert!(*at_ms <= seen.max(c.joined_at_ms), "credited beyond last seen");
                        } else {
                            prop_assert_eq!(*at_ms, c.joined_at_ms, "never seen: no credited time");
                        }
                    }
                    Action::Open(found) => {
                        prop_assert!(found.joined_at_ms <= NOW);
                        prop_assert_eq!(found.seen_at_ms, NOW);
                    }
                    Action::Seen { at_ms, .. } => prop_assert_eq!(*at_ms, NOW),
                }
            }
        }

        #[test]
        fn planning_again_after_applying_changes_nothing(
            open in arb_open(),
            listed in arb_listed(),
            (listing, asked) in arb_listing(),
        ) {
            let r = Room { num_participants: match listing { ArbListing::Listed(n) => n, _ => 0 }, ..room(0) };
            let v = view(&listing, &r, asked, &listed);
            let first = plan(&open, &v, NOW);
            let after = apply(&open, &first);
            let second = plan(&after, &v, NOW);
            prop_assert!(
                second.iter().all(|a| matches!(a, Action::Seen { .. })),
                "second plan {second:?}"
            );
            prop_assert_eq!(apply(&after, &second), after);
        }

        #[test]
        fn every_cycle_and_participant_is_accounted_for_once(
            open in arb_open(),
            listed in arb_listed(),
            (listing, asked) in arb_listing(),
        ) {
            let r = Room { num_participants: match listing { ArbListing::Listed(n) => n, _ => 0 }, ..room(0) };
            let v = view(&listing, &r, asked, &listed);
            let actions = plan(&open, &v, NOW);
            let sid = |a: &Action| match a {
                Action::Close { participant_sid, .. } | Action::Seen { participant_sid, .. } => participant_sid.clone(),
                Action::Open(f) => f.participant_sid.clone(),
            };
            let sids: Vec<String> = actions.iter().map(sid).collect();
            let unique: HashSet<&String> = sids.iter().collect();
            prop_assert_eq!(unique.len(), sids.len(), "one action per sid: {:?}", actions);
            let present: HashSet<&str> = if asked {
                listed.iter().filter(|p| p.is_connected()).map(|p| p.sid.as_str()).collect()
            } else {
                HashSet::new()
            };
            for p in &present {
                prop_assert!(unique.contains(&p.to_string()), "listed {p} has no action");
            }
            if !v.proves_absence() {
                let closes = actions.iter().filter(|a| matches!(a, Action::Close { .. })).count();
                prop_assert_eq!(closes, 0, "closed without proof: {:?}", actions);
            }
            if matches!(listing, ArbListing::Absent) {
                for c in &open {
                    prop_assert!(unique.contains(&c.participant_sid));
                }
            }
        }
    }
}
