//! One student's morning: join, heartbeats, perhaps a reconnect, leave.

use super::*;

/// One student's (or the run's) counts.
pub(super) struct Tally {
    pub(super) acks: Samples,
    pub(super) webhook: Samples,
    pub(super) webhooks_sent: u64,
    pub(super) webhooks_failed: u64,
    pub(super) acks_missing: u64,
    pub(super) socket_errors: u64,
    pub(super) reconnects: u64,
    pub(super) statuses: Statuses,
}

impl Tally {
    pub(super) fn new() -> Tally {
        Tally {
            acks: Samples::default(),
            webhook: Samples::default(),
            webhooks_sent: 0,
            webhooks_failed: 0,
            acks_missing: 0,
            socket_errors: 0,
            reconnects: 0,
            statuses: Statuses::default(),
        }
    }

    pub(super) fn merge(&mut self, other: Tally) {
        self.acks.merge(other.acks);
        self.webhook.merge(other.webhook);
        self.webhooks_sent += other.webhooks_sent;
        self.webhooks_failed += other.webhooks_failed;
        self.acks_missing += other.acks_missing;
        self.socket_errors += other.socket_errors;
        self.reconnects += other.reconnects;
        self.statuses.merge(other.statuses);
    }
}

/// Posts one participant webhook as livekit-server does.
pub(super) async fn post(
    shared: &Shared,
    t: &mut Tally,
    room: usize,
    identity: &str,
    sid: &str,
    joined_at_ms: i64,
    joined: bool,
) {
    let kind = if joined {
        "participant_joined"
    } else {
        "participant_left"
    };
    let name = &shared.rooms[room];
    let body = participant_event(
        kind,
        &livekit_id(
            "EV",
            &shared.prefix,
            shared.events.fetch_add(1, Ordering::Relaxed),
        ),
        chrono::Utc::now().timestamp(),
        &Participant {
            room: name,
            room_sid: &livekit_id("RM", &shared.prefix, room as u64),
            sid,
            identity,
            joined_at_ms,
        },
    );
    let token = shared.signer.webhook_token(body.as_bytes());
    let posted = Instant::now();
    let replaced = shared.expect[room].lock().expect("lock").insert(
        identity.to_string(),
        Expect {
            sid: sid.to_string(),
            joined,
            posted,
        },
    );
    if replaced.is_some() {
        shared.push_lost.fetch_add(1, Ordering::Relaxed);
    }
    let failed = match shared
        .client
        .post(shared.home(room).url("/webhooks/livekit"))
        .header("Content-Type", "application/webhook+json")
        .header("Authorization", token)
        .body(body)
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status();
            let _ = response.bytes().await;
            t.webhook.record(posted.elapsed());
            (!status.is_success()).then(|| format!("webhook {}", status.as_u16()))
        }
        Err(e) => Some(format!("webhook error: {}", crate::ingest::short_error(&e))),
    };
    t.webhooks_sent += 1;
    if let Some(what) = failed {
        t.webhooks_failed += 1;
        t.statuses.add(what);
        shared.expect[room].lock().expect("lock").remove(identity);
    }
}

/// A student's socket, tried three times.
pub(super) async fn student_connect(
    shared: &Shared,
    t: &mut Tally,
    plan: &Plan,
    token: &str,
) -> Option<Ws> {
    let n = plan.room * 1000 + plan.seat;
    for _ in 0..3 {
        let attempt = tokio::time::timeout(
            Duration::from_secs(30),
            common::ws_connect(
                shared.home(plan.room),
                shared.ip(n),
                &shared.rooms[plan.room],
                token,
            ),
        )
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("timeout")));
        match attempt {
            Ok(ws) => return Some(ws),
            Err(e) => {
                t.socket_errors += 1;
                t.statuses.add(format!("student connect: {e}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    None
}

/// One student's lesson: join, heartbeats, maybe a reconnect, leave.
pub(super) async fn student(shared: Arc<Shared>, plan: Plan) -> Tally {
    let mut t = Tally::new();
    let n = (plan.room * 1_000_000 + plan.seat) as u64;
    let identity = format!("student-{}", plan.seat);
    let token = shared
        .signer
        .access_token(&identity, &shared.rooms[plan.room], Role::Student);
    let beat = Message::text(r#"{"type":"heartbeat"}"#);
    let mut cycle = 0u64;
    let sid = |cycle: u64| livekit_id("PA", &shared.prefix, n * 4 + cycle);

    tokio::time::sleep_until(plan.join_at.into()).await;
    let mut joined_ms = chrono::Utc::now().timestamp_millis();
    post(
        &shared,
        &mut t,
        plan.room,
        &identity,
        &sid(cycle),
        joined_ms,
        true,
    )
    .await;
    let mut ws = student_connect(&shared, &mut t, &plan, &token).await;
    let now_in = shared.in_class.fetch_add(1, Ordering::Relaxed) + 1;
    shared.peak.fetch_max(now_in, Ordering::Relaxed);
    let mut next_beat = Instant::now() + plan.first_beat;
    let mut sent_at: Option<Instant> = None;
    let mut reconnect_at = plan.reconnect_at;
    let far = plan.leave_at + Duration::from_secs(3600);

    loop {
        let wake = next_beat
            .min(plan.leave_at)
            .min(reconnect_at.unwrap_or(far));
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                if now >= plan.leave_at {
                    break;
                }
                if reconnect_at.is_some_and(|at| now >= at) {
                    // Gone from LiveKit and the page for a few seconds.
                    reconnect_at = None;
                    t.reconnects += 1;
                    if sent_at.take().is_some_and(|s| s.elapsed() > Duration::from_secs(1)) {
                        t.acks_missing += 1;
                    }
                    if let Some(mut socket) = ws.take() {
                        let _ = socket.close(None).await;
                    }
                    shared.in_class.fetch_sub(1, Ordering::Relaxed);
                    post(&shared, &mut t, plan.room, &identity, &sid(cycle), joined_ms, false).await;
                    tokio::time::sleep(shared.pause).await;
                    cycle += 1;
                    joined_ms = chrono::Utc::now().timestamp_millis();
                    post(&shared, &mut t, plan.room, &identity, &sid(cycle), joined_ms, true).await;
                    ws = student_connect(&shared, &mut t, &plan, &token).await;
                    let now_in = shared.in_class.fetch_add(1, Ordering::Relaxed) + 1;
                    shared.peak.fetch_max(now_in, Ordering::Relaxed);
                    next_beat = Instant::now() + plan.first_beat;
                    continue;
                }
                if now >= next_beat {
                    next_beat += shared.interval;
                    let Some(socket) = ws.as_mut() else { continue };
                    if sent_at.is_some() {
                        t.acks_missing += 1;
                    }
                    sent_at = Some(Instant::now());
                    if socket.send(beat.clone()).await.is_err() {
                        sent_at = None;
                        t.socket_errors += 1;
                        t.statuses.add("student send failed");
                        ws = student_connect(&shared, &mut t, &plan, &token).await;
                    }
                }
            }
            message = async {
                match ws.as_mut() {
                    Some(socket) => socket.next().await,
                    None => std::future::pending().await,
                }
            } => match message {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str();
                    if text.contains("\"heartbeat.ack\"") {
                        if let Some(sent) = sent_at.take() {
                            t.acks.record(sent.elapsed());
                        }
                    } else if text.contains("\"type\":\"error\"") {
                        t.statuses.add("student error message");
                        t.socket_errors += 1;
                    }
                }
                Some(Ok(_)) => {}
                _ => {
                    // Closed under the student: the page reconnects.
                    if sent_at.take().is_some() {
                        t.acks_missing += 1;
                    }
                    t.socket_errors += 1;
                    t.statuses.add("student socket closed");
                    ws = student_connect(&shared, &mut t, &plan, &token).await;
                }
            },
        }
    }
    if sent_at.is_some_and(|s| s.elapsed() > Duration::from_secs(1)) {
        t.acks_missing += 1;
    }
    post(
        &shared,
        &mut t,
        plan.room,
        &identity,
        &sid(cycle),
        joined_ms,
        false,
    )
    .await;
    if let Some(mut socket) = ws {
        let _ = socket.close(None).await;
    }
    shared.in_class.fetch_sub(1, Ordering::Relaxed);
    t
}
