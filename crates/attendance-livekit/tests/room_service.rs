//! The client against the fake RoomService, over real HTTP on 127.0.0.1.

use std::time::{Duration, Instant};

use attendance_livekit::fake::{self, Failure, FakeRoomService, Format};
use attendance_livekit::reconcile::{self, Action, LiveKitView, OpenCycle, RoomListing};
use attendance_livekit::token::{self, VideoGrant};
use attendance_livekit::{
    Error, Method, ParticipantInfo, ParticipantKind, ParticipantState, RoomServiceClient,
    TrackInfo, TrackSource, TrackType,
};

const KEY: &str = "devkey";
const SECRET: &str = "devsecret-that-is-long-enough";

async fn start() -> FakeRoomService {
    FakeRoomService::start(KEY, SECRET).await.unwrap()
}

/// A participant with every field the client reads set to something.
fn full_participant() -> ParticipantInfo {
    let mut p = fake::participant("PA_ada1", "ada", 1_767_000_000_123);
    p.name = "Ada Lovelace".into();
    p.metadata = r#"{"role":"student"}"#.into();
    p.attributes.insert("role".into(), "student".into());
    p.attributes.insert("seat".into(), "4".into());
    p.is_publisher = true;
    p.tracks = vec![
        TrackInfo {
            sid: "TR_mic".into(),
            kind: TrackType::Audio,
            source: TrackSource::Microphone,
            muted: true,
            name: String::new(),
        },
        TrackInfo {
            sid: "TR_cam".into(),
            kind: TrackType::Video,
            source: TrackSource::Camera,
            muted: false,
            name: "camera".into(),
        },
    ];
    p
}

/// Participants covering the zero values protojson omits.
fn roster() -> Vec<ParticipantInfo> {
    let mut agent = fake::participant("PA_bot", "helper-bot", 1_767_000_000_000);
    agent.kind = ParticipantKind::Agent;
    let mut leaving = fake::participant("PA_bo", "bo", 1_767_000_001_000);
    leaving.state = ParticipantState::Disconnected;
    leaving.disconnect_reason = Some("CLIENT_INITIATED".into());
    let mut joining = fake::participant("PA_cy", "cy", 0);
    joining.state = ParticipantState::Joining;
    vec![full_participant(), agent, leaving, joining]
}

/// Every error's message, checked for the token: JWTs start with `eyJ`.
fn assert_no_token(error: &Error) {
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("eyJ"), "token leaked: {shown}");
    assert!(!shown.contains(SECRET), "secret leaked: {shown}");
}

#[tokio::test]
async fn lists_rooms_and_participants_in_every_spelling() {
    let lk = start().await;
    let mut math = fake::room("math-101");
    math.metadata = "algebra".into();
    lk.add_room(math.clone());
    lk.add_room(fake::room("art-7"));
    lk.set_participants("math-101", roster());

    for format in [
        Format::SnakeCase,
        Format::CamelCase,
        Format::CamelCaseNumbers,
    ] {
        lk.set_format(format);
        let client = lk.client();

        let rooms = client.list_all_rooms().await.unwrap();
        assert_eq!(rooms, lk.rooms(), "{format:?}");
        assert_eq!(rooms.len(), 2);
        assert_eq!(rooms[0].num_participants, 3, "DISCONNECTED not counted");
        assert_eq!(rooms[0].metadata, "algebra");
        assert_eq!(rooms[0].creation_time_ms, math.creation_time_ms);
        assert_eq!(rooms[1].num_participants, 0);

        let only = client.list_rooms(&["art-7", "nope"]).await.unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].name, "art-7");
        assert!(client.list_rooms(&["nope"]).await.unwrap().is_empty());

        // Exactly what was stored comes back, zero values included.
        let participants = client.list_participants("math-101").await.unwrap();
        assert_eq!(participants, roster(), "{format:?}");
        assert_eq!(participants[0].attributes["seat"], "4");
        assert_eq!(participants[1].kind, ParticipantKind::Agent);
        assert_eq!(participants[3].kind, ParticipantKind::Standard);
        assert!(client.list_participants("art-7").await.unwrap().is_empty());
    }
    let names: Vec<Vec<String>> = lk
        .calls()
        .iter()
        .filter(|c| c.method == Some(Method::ListRooms))
        .map(|c| c.names.clone())
        .collect();
    assert_eq!(names[0], Vec::<String>::new());
    assert_eq!(names[1], vec!["art-7".to_string(), "nope".to_string()]);
}

#[tokio::test]
async fn an_unknown_room_lists_nobody_or_is_not_found() {
    let lk = start().await;
    let client = lk.client();
    assert!(client.list_participants("ghost").await.unwrap().is_empty());
    lk.set_unknown_room_not_found(true);
    let e = client.list_participants("ghost").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.status(), Some(404));
}

#[tokio::test]
async fn urls_in_every_form_reach_the_fake() {
    let lk = start().await;
    lk.add_room(fake::room("r"));
    for url in [
        lk.ws_url(),
        format!("{}/", lk.ws_url()),
        lk.url(),
        format!("{}/", lk.url()),
    ] {
        let client = RoomServiceClient::new(&url, KEY, SECRET).unwrap();
        assert_eq!(client.list_all_rooms().await.unwrap().len(), 1, "{url}");
    }
}

#[tokio::test]
async fn a_wrong_secret_or_key_is_unauthorized() {
    let lk = start().await;
    lk.add_room(fake::room("math"));
    let wrong_secret = RoomServiceClient::new(&lk.ws_url(), KEY, "not-the-secret").unwrap();
    for e in [
        wrong_secret.list_all_rooms().await.unwrap_err(),
        wrong_secret.list_participants("math").await.unwrap_err(),
    ] {
        // LiveKit (and the fake) quote the token in this plain-text answer.
        let Error::Unauthorized {
            code: None, msg, ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert!(
            msg.starts_with("invalid token: [redacted], error:"),
            "{msg}"
        );
        assert_no_token(&e);
    }
    let wrong_key = RoomServiceClient::new(&lk.ws_url(), "otherkey", SECRET).unwrap();
    let e = wrong_key.list_all_rooms().await.unwrap_err();
    assert_eq!(
        e,
        Error::Unauthorized {
            method: Method::ListRooms,
            code: None,
            msg: "invalid API key: otherkey".into()
        }
    );
    assert!(lk.calls().iter().all(|c| c.status == 401));
}

/// Posts to the fake with a hand-made token, as a misbehaving client would.
async fn post(
    lk: &FakeRoomService,
    method: Method,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{}", lk.url(), method.path()))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_fake_enforces_livekit_grants() {
    let lk = start().await;
    lk.add_room(fake::room("math"));
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let mint = |grant: VideoGrant, at: i64| token::mint(KEY, SECRET, grant, at).unwrap();
    let denied = r#"{"code":"unauthenticated","msg":"permissions denied"}"#;
    let rooms = "{}";
    let math = r#"{"room":"math"}"#;

    // The right grants pass.
    assert_eq!(
        post(
            &lk,
            Method::ListRooms,
            Some(&mint(VideoGrant::room_list(), now)),
            rooms
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post(
            &lk,
            Method::ListParticipants,
            Some(&mint(VideoGrant::room_admin("math"), now)),
            math
        )
        .await
        .0,
        200
    );
    // nbf 30 s ahead is inside the leeway.
    assert_eq!(
        post(
            &lk,
            Method::ListRooms,
            Some(&mint(VideoGrant::room_list(), now + 30)),
            rooms
        )
        .await
        .0,
        200
    );

    // Valid tokens without the grant: Twirp unauthenticated.
    let wrong = [
        (Method::ListRooms, VideoGrant::room_admin("math"), rooms),
        (Method::ListParticipants, VideoGrant::room_list(), math),
        (
            Method::ListParticipants,
            VideoGrant::room_admin("art"),
            math,
        ),
        (
            Method::ListParticipants,
            VideoGrant {
                room_admin: true,
                ..VideoGrant::default()
            },
            math,
        ),
        (
            Method::ListParticipants,
            VideoGrant {
                room: Some("math".into()),
                room_join: true,
                ..VideoGrant::default()
            },
            math,
        ),
    ];
    for (method, grant, body) in wrong {
        let answer = post(&lk, method, Some(&mint(grant.clone(), now)), body).await;
        assert_eq!(answer, (401, denied.to_string()), "{method} {grant:?}");
    }
    // No token at all: no grants, so the same.
    assert_eq!(
        post(&lk, Method::ListRooms, None, rooms).await,
        (401, denied.to_string())
    );

    // Bad or expired tokens: plain text.
    let expired = mint(VideoGrant::room_list(), now - 3600);
    let (status, text) = post(&lk, Method::ListRooms, Some(&expired), rooms).await;
    assert_eq!(status, 401);
    assert!(text.contains("token is expired"), "{text}");
    let (status, text) = post(&lk, Method::ListRooms, Some("not.a.jwt"), rooms).await;
    assert_eq!(
        (status, text.as_str()),
        (401, "invalid authorization token\n")
    );
    let forged = token::mint(KEY, "another-secret", VideoGrant::room_list(), now).unwrap();
    let (status, text) = post(&lk, Method::ListRooms, Some(&forged), rooms).await;
    assert_eq!(status, 401);
    assert!(text.starts_with("invalid token: "), "{text}");

    // And the client reports a grant refusal with its Twirp code.
    let client = lk.client();
    assert!(client.list_participants("math").await.is_ok());
}

#[tokio::test]
async fn each_failure_maps_to_its_error() {
    let lk = start().await;
    lk.add_room(fake::room("math"));
    let client = lk.client().with_timeout(Duration::from_millis(500));

    lk.fail_next(1, Failure::Internal);
    let e = client.list_all_rooms().await.unwrap_err();
    assert_eq!(
        e,
        Error::Twirp {
            method: Method::ListRooms,
            status: 500,
            code: "internal".into(),
            msg: "injected failure".into()
        }
    );

    lk.fail_next(
        1,
        Failure::Twirp {
            status: 503,
            code: "unavailable".into(),
            msg: "draining".into(),
        },
    );
    let e = client.list_participants("math").await.unwrap_err();
    assert!(
        matches!(&e, Error::Twirp { status: 503, code, method: Method::ListParticipants, .. } if code == "unavailable"),
        "{e:?}"
    );

    lk.fail_next(1, Failure::Unauthorized);
    let e = client.list_all_rooms().await.unwrap_err();
    assert!(matches!(e, Error::Unauthorized { code: None, .. }), "{e:?}");

    lk.fail_next(1, Failure::Garbage);
    let e = client.list_all_rooms().await.unwrap_err();
    assert!(matches!(e, Error::Malformed { status: 200, .. }), "{e:?}");

    lk.fail_next(1, Failure::CloseConnection);
    let e = client.list_all_rooms().await.unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");

    lk.fail_next(1, Failure::Slow(Duration::from_millis(50)));
    assert_eq!(
        client.list_all_rooms().await.unwrap().len(),
        1,
        "slow but in time"
    );

    // Next N, then normal again.
    lk.fail_next(2, Failure::Internal);
    assert!(client.list_all_rooms().await.is_err());
    assert!(client.list_all_rooms().await.is_err());
    assert!(client.list_all_rooms().await.is_ok());

    // Until reset.
    lk.fail_until_reset(Failure::Garbage);
    for _ in 0..3 {
        assert!(matches!(
            client.list_all_rooms().await,
            Err(Error::Malformed { .. })
        ));
    }
    lk.reset_failures();
    assert!(client.list_all_rooms().await.is_ok());

    let statuses: Vec<u16> = lk.calls().iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [500, 503, 401, 200, 0, 200, 500, 500, 200, 200, 200, 200, 200]
    );
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let lk = start().await;
    let client = lk.client().with_timeout(Duration::from_millis(200));
    lk.fail_next(1, Failure::Slow(Duration::from_secs(5)));
    let started = Instant::now();
    let e = client.list_participants("math").await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(
        e,
        Error::Timeout {
            method: Method::ListParticipants,
            url: lk.url(),
            timeout: Duration::from_millis(200)
        }
    );
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "LiveKit ListParticipants at {} timed out after 200 ms",
            lk.url()
        )
    );
    // The next call is not held up by the abandoned one.
    assert!(client.list_participants("math").await.is_ok());
}

#[tokio::test]
async fn a_stopped_server_is_unreachable_and_tls_is_spoken() {
    let lk = start().await;
    let client = lk.client();
    let addr = lk.addr();
    // https:// to a port that speaks plain HTTP: the TLS handshake fails.
    let tls = RoomServiceClient::new(&format!("wss://{addr}"), KEY, SECRET)
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    let e = tls.list_all_rooms().await.unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "LiveKit ListRooms at https://{addr} unreachable: "
        )),
        "{e}"
    );

    lk.shutdown().await;
    let e = client.list_all_rooms().await.unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    assert_no_token(&e);
}

#[tokio::test]
async fn no_error_shows_the_token() {
    let lk = start().await;
    let client = lk.client().with_timeout(Duration::from_millis(100));
    let wrong = RoomServiceClient::new(&lk.ws_url(), KEY, "wrong").unwrap();
    let mut errors = vec![wrong.list_all_rooms().await.unwrap_err()];
    for failure in [
        Failure::Internal,
        Failure::Unauthorized,
        Failure::Garbage,
        Failure::CloseConnection,
        Failure::Slow(Duration::from_secs(2)),
    ] {
        lk.fail_next(1, failure);
        errors.push(client.list_participants("math").await.unwrap_err());
    }
    let labels: Vec<&str> = errors.iter().map(Error::label).collect();
    assert_eq!(
        labels,
        [
            "unauthorized",
            "twirp",
            "unauthorized",
            "malformed",
            "unreachable",
            "timeout"
        ]
    );
    for e in &errors {
        assert_no_token(e);
    }
}

#[tokio::test]
async fn calls_are_counted_per_method_and_room() {
    let lk = start().await;
    let a = lk.client();
    let b = lk.client(); // a second instance of the service
    lk.add_room(fake::room("r1"));
    lk.add_room(fake::room("r2"));
    a.list_all_rooms().await.unwrap();
    b.list_all_rooms().await.unwrap();
    a.list_participants("r1").await.unwrap();
    b.list_participants("r2").await.unwrap();
    assert_eq!(lk.call_count(Method::ListRooms), 2);
    assert_eq!(lk.call_count(Method::ListParticipants), 2);
    assert_eq!(lk.room_calls("r1"), 1);
    assert_eq!(lk.room_calls("r2"), 1);
    assert_eq!(
        lk.room_call_counts().into_iter().collect::<Vec<_>>(),
        [("r1".to_string(), 1), ("r2".to_string(), 1)]
    );
    assert_eq!(lk.max_calls_within(Duration::from_secs(60)), 4);

    lk.reset_calls();
    for _ in 0..3 {
        a.list_participants("r1").await.unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    assert_eq!(
        lk.max_calls_within(Duration::from_millis(100)),
        1,
        "spaced calls"
    );
    assert_eq!(lk.max_calls_within(Duration::from_secs(10)), 3);
}

#[tokio::test]
async fn rooms_and_participants_change_as_a_test_says() {
    let lk = start().await;
    let client = lk.client();
    lk.add_participant("math", fake::participant("PA_1", "ada", 1_767_000_000_000));
    lk.add_participant("math", fake::participant("PA_2", "bo", 1_767_000_000_500));
    assert_eq!(
        client.list_rooms(&["math"]).await.unwrap()[0].sid,
        "RM_math"
    );
    assert!(
        lk.update_participant("math", "PA_1", |p| p.tracks.push(TrackInfo {
            sid: "TR_1".into(),
            muted: true,
            ..TrackInfo::default()
        }))
    );
    assert!(!lk.update_participant("math", "PA_9", |_| {}));
    assert_eq!(
        lk.remove_participant("math", "PA_2").unwrap().identity,
        "bo"
    );
    let listed = client.list_participants("math").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].tracks[0].muted);

    // A contradictory ListRooms count, for the reconciler's sake.
    assert!(lk.set_reported_num_participants("math", Some(5)));
    assert_eq!(
        client.list_all_rooms().await.unwrap()[0].num_participants,
        5
    );

    // A new instance of the room (new sid) starts empty.
    let mut again = fake::room("math");
    again.sid = "RM_math_2".into();
    lk.add_room(again);
    assert!(client.list_participants("math").await.unwrap().is_empty());
    assert_eq!(
        client.list_all_rooms().await.unwrap()[0].num_participants,
        0
    );

    assert_eq!(lk.remove_room("math").unwrap().sid, "RM_math_2");
    assert!(client.list_all_rooms().await.unwrap().is_empty());
    lk.add_room(fake::room("x"));
    lk.clear();
    assert!(lk.rooms().is_empty());
}

/// The whole loop: ask the fake, plan, apply, ask again.
#[tokio::test]
async fn reconciling_a_room_against_the_fake() {
    let lk = start().await;
    let client = lk.client();
    lk.add_participant(
        "math",
        fake::participant("PA_ada", "ada", 1_767_000_000_000),
    );
    lk.add_participant("math", fake::participant("PA_new", "cy", 1_767_000_100_000));

    // The service holds ada (webhook seen) and bo (whose leave was lost).
    let mut open = vec![
        OpenCycle {
            participant_sid: "PA_ada".into(),
            identity: "ada".into(),
            joined_at_ms: 1_767_000_000_000,
            last_seen_ms: None,
        },
        OpenCycle {
            participant_sid: "PA_bo".into(),
            identity: "bo".into(),
            joined_at_ms: 1_767_000_050_000,
            last_seen_ms: Some(1_767_000_060_000),
        },
    ];

    let check = |open: Vec<OpenCycle>, now_ms: i64| {
        let client = client.clone();
        async move {
            let rooms = client.list_rooms(&["math"]).await.unwrap();
            let listing = rooms.iter().find(|r| r.name == "math");
            let participants = match listing {
                Some(_) => Some(client.list_participants("math").await.unwrap()),
                None => None,
            };
            let view = LiveKitView {
                room: listing.map_or(RoomListing::Absent, RoomListing::Listed),
                participants: participants.as_deref(),
            };
            (reconcile::plan(&open, &view, now_ms), open)
        }
    };

    let (actions, _) = check(open.clone(), 1_767_000_200_000).await;
    assert_eq!(actions.len(), 3, "{actions:?}");
    assert_eq!(
        actions[0],
        Action::Seen {
            participant_sid: "PA_ada".into(),
            at_ms: 1_767_000_200_000
        }
    );
    assert_eq!(
        actions[1],
        Action::Close {
            participant_sid: "PA_bo".into(),
            identity: "bo".into(),
            at_ms: 1_767_000_060_000,
            reason: reconcile::RECONCILED
        }
    );
    let Action::Open(found) = &actions[2] else {
        panic!("{actions:?}")
    };
    assert_eq!(
        (found.identity.as_str(), found.joined_at_ms),
        ("cy", 1_767_000_100_000)
    );

    // Apply: ada seen, bo closed, cy opened.
    open[0].last_seen_ms = Some(1_767_000_200_000);
    open.remove(1);
    open.push(OpenCycle {
        participant_sid: found.participant_sid.clone(),
        identity: found.identity.clone(),
        joined_at_ms: found.joined_at_ms,
        last_seen_ms: Some(found.seen_at_ms),
    });

    // The room ends; its webhooks are lost. The next check closes both at
    // their last sighting.
    lk.remove_room("math");
    lk.reset_calls();
    let (actions, _) = check(open, 1_767_000_300_000).await;
    assert_eq!(
        actions,
        vec![
            Action::Close {
                participant_sid: "PA_ada".into(),
                identity: "ada".into(),
                at_ms: 1_767_000_200_000,
                reason: reconcile::RECONCILED
            },
            Action::Close {
                participant_sid: "PA_new".into(),
                identity: "cy".into(),
                at_ms: 1_767_000_200_000,
                reason: reconcile::RECONCILED
            },
        ]
    );
    assert_eq!(
        lk.call_count(Method::ListParticipants),
        0,
        "an absent room is not asked about"
    );
}

#[tokio::test]
async fn messages_stay_readable_with_a_short_secret() {
    // Only the token is scrubbed from messages: a secret of one letter must
    // not blank that letter out of every message.
    let lk = FakeRoomService::start("k", "s").await.unwrap();
    let client = lk.client();
    lk.fail_next(
        1,
        Failure::Twirp {
            status: 503,
            code: "unavailable".into(),
            msg: "nodes drained".into(),
        },
    );
    let e = client.list_all_rooms().await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "LiveKit ListRooms failed: HTTP 503 unavailable: nodes drained"
    );
}
