//! One room's lesson: scheduled, its teacher's dashboard watched for the
//! pushes, its students sent in.

use super::student::student;
use super::*;

/// A teacher dashboard's counts.
pub(super) struct Watched {
    pub(super) push: Samples,
    pub(super) updates: u64,
    pub(super) snapshots: u64,
    pub(super) socket_errors: u64,
    pub(super) statuses: Statuses,
}

/// Schedules one room's lesson (starting now), opens its teacher's
/// dashboard and sends its students in.
pub(super) async fn open_room(
    shared: Arc<Shared>,
    room: usize,
    plans: Vec<Plan>,
    stop: watch::Receiver<bool>,
) -> (Vec<JoinHandle<Tally>>, JoinHandle<Watched>, Statuses) {
    let mut statuses = Statuses::default();
    let name = &shared.rooms[room];
    if let Err(e) =
        common::schedule(&shared.client, shared.home(room), &shared.signer, name, 0).await
    {
        eprintln!("schoolday: {e:#}");
        statuses.add("schedule failed");
    }
    let mut watched = Watched {
        push: Samples::default(),
        updates: 0,
        snapshots: 0,
        socket_errors: 0,
        statuses: Statuses::default(),
    };
    let ws = teacher_connect(&shared, room, &mut watched).await;
    let teacher = tokio::spawn(watch_room(shared.clone(), room, ws, watched, stop));
    let students = plans
        .into_iter()
        .map(|plan| tokio::spawn(student(shared.clone(), plan)))
        .collect();
    (students, teacher, statuses)
}

pub(super) async fn teacher_connect(shared: &Shared, room: usize, w: &mut Watched) -> Option<Ws> {
    let name = &shared.rooms[room];
    let token = shared
        .signer
        .access_token(&format!("teacher-{name}"), name, Role::Teacher);
    for _ in 0..3 {
        let attempt = tokio::time::timeout(Duration::from_secs(30), async {
            let mut ws =
                common::ws_connect(shared.teacher_home(room), shared.ip(room), name, &token)
                    .await?;
            // The snapshot comes first.
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    note(shared, room, text.as_str(), w);
                    Ok(ws)
                }
                _ => Err(anyhow::anyhow!("no snapshot")),
            }
        })
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("timeout")));
        match attempt {
            Ok(ws) => return Some(ws),
            Err(e) => {
                w.socket_errors += 1;
                w.statuses.add(format!("teacher connect: {e}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    None
}

/// A teacher's dashboard until the run ends: every message that shows a
/// posted change ends that change's push latency.
pub(super) async fn watch_room(
    shared: Arc<Shared>,
    room: usize,
    mut ws: Option<Ws>,
    mut w: Watched,
    mut stop: watch::Receiver<bool>,
) -> Watched {
    loop {
        let Some(socket) = ws.as_mut() else {
            let _ = stop.changed().await;
            break;
        };
        tokio::select! {
            _ = stop.changed() => break,
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => note(&shared, room, text.as_str(), &mut w),
                Some(Ok(_)) => {}
                _ => {
                    w.socket_errors += 1;
                    w.statuses.add("teacher socket closed");
                    ws = teacher_connect(&shared, room, &mut w).await;
                }
            },
        }
    }
    if let Some(mut socket) = ws {
        let _ = socket.close(None).await;
    }
    w
}

/// Matches one dashboard message against the room's posted changes: a join
/// is shown when the participant's cycle with that sid is open, a leave
/// when it is closed.
pub(super) fn note(shared: &Shared, room: usize, text: &str, w: &mut Watched) {
    let snapshot = text.contains("\"attendance.snapshot\"");
    if !snapshot && !text.contains("\"attendance.updated\"") {
        return;
    }
    let arrived = Instant::now();
    if snapshot {
        w.snapshots += 1;
    } else {
        w.updates += 1;
    }
    // Most updates are heartbeats: only parse while a change is awaited.
    if shared.expect[room].lock().expect("lock").is_empty() {
        return;
    }
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let participants: Vec<&Value> = if snapshot {
        v["participants"].as_array().into_iter().flatten().collect()
    } else {
        vec![&v["attendance"]]
    };
    let mut expect = shared.expect[room].lock().expect("lock");
    for p in participants {
        let Some(identity) = p["identity"].as_str() else {
            continue;
        };
        let Some(e) = expect.get(identity) else {
            continue;
        };
        let shown = p["cycles"].as_array().into_iter().flatten().any(|c| {
            c["participant_sid"].as_str() == Some(e.sid.as_str())
                && c["left_at"].is_null() == e.joined
        });
        if shown {
            w.push.record(arrived - e.posted);
            expect.remove(identity);
        }
    }
}
