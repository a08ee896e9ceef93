//! Teachers' corrections of attendance, with a reason, and their audit trail.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;

use super::error::{json_reply, ApiError, ApiResult};
use super::lessons::{lesson, LessonQuery};
use super::reports::participant_report;
use super::App;
use crate::domain::{now, now_ms, SessionRow};
use crate::livekit::Principal;
use crate::report::OVERRIDE_STATUSES;
use crate::store::corrections::Correction;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    status: String,
    reason: String,
}

#[derive(Debug, Deserialize)]
pub struct ReasonQuery {
    reason: Option<String>,
}

/// Corrects one participant's status in one lesson (the current one, or
/// `?session=ID`).
pub async fn set_override(
    app: App,
    who: Principal,
    room: String,
    identity: String,
    q: LessonQuery,
    body: Bytes,
) -> ApiResult {
    if !who.manages(&room) {
        return Err(ApiError::forbidden(
            "only the room's teacher or an administrator may correct attendance",
        ));
    }
    let body: OverrideBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid override: {e}")))?;
    if !OVERRIDE_STATUSES.contains(&body.status.as_str()) {
        return Err(ApiError::bad_request(format!(
            "status must be one of {}",
            OVERRIDE_STATUSES.join(", ")
        )));
    }
    let reason = correction_reason(&body.reason, "a reason of 1 to 1000 bytes is required")?;
    let session = lesson(&app, &room, q).await?;
    let facts = app.store.session_facts(&session, Some(&identity)).await?;
    // A typo must not invent a student who "never joined".
    if facts.cycles.is_empty() && facts.roster.is_empty() && facts.overrides.is_empty() {
        return Err(ApiError::not_found(format!(
            "`{identity}` is neither on the roster of this lesson in `{room}` nor seen in it"
        )));
    }
    let correction = Correction {
        identity: &identity,
        status: Some(&body.status),
        reason,
        author: &who.identity,
        at_ms: now_ms(),
    };
    app.store.set_override(&session, correction).await?;
    tracing::info!(room = %room, session = session.id, identity = %identity, by = %who.identity, status = %body.status, "attendance corrected");
    announce(&app, &session, &identity).await?;
    let q = LessonQuery {
        session: Some(session.id),
    };
    participant_report(app, who, room, identity, q).await
}

/// Tells live subscribers: a correction in the room's current lesson is
/// one participant's update; one in another lesson makes the room's
/// sockets resync (those following that lesson get its new snapshot).
async fn announce(app: &App, session: &SessionRow, identity: &str) -> Result<(), ApiError> {
    let current = app.store.current_session(&session.room, now()).await?;
    match current {
        Some((c, _)) if c.id == session.id => app.live.changed(&session.room, Some(identity)),
        _ => app.live.changed(&session.room, None),
    }
    Ok(())
}

/// Every correction and its removal carry a reason for the audit trail.
fn correction_reason<'a>(reason: &'a str, refusal: &str) -> Result<&'a str, ApiError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 1000 {
        return Err(ApiError::bad_request(refusal.to_string()));
    }
    Ok(reason)
}

pub async fn remove_override(
    app: App,
    who: Principal,
    room: String,
    identity: String,
    lesson_q: LessonQuery,
    q: ReasonQuery,
) -> ApiResult {
    if !who.manages(&room) {
        return Err(ApiError::forbidden(
            "only the room's teacher or an administrator may correct attendance",
        ));
    }
    let reason = q.reason.unwrap_or_default();
    let reason = correction_reason(
        &reason,
        "removing a correction needs a reason (?reason=…) of 1 to 1000 bytes",
    )?;
    let session = lesson(&app, &room, lesson_q).await?;
    let correction = Correction {
        identity: &identity,
        status: None,
        reason,
        author: &who.identity,
        at_ms: now_ms(),
    };
    if !app.store.remove_override(&session, correction).await? {
        return Err(ApiError::not_found(format!(
            "`{identity}` has no override in this lesson of `{room}`"
        )));
    }
    tracing::info!(room = %room, session = session.id, identity = %identity, by = %who.identity, "attendance correction removed");
    announce(&app, &session, &identity).await?;
    let q = LessonQuery {
        session: Some(session.id),
    };
    participant_report(app, who, room, identity, q).await
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    room: Option<String>,
    /// One session's (lesson's) entries.
    session: Option<i64>,
    limit: Option<i64>,
}

impl AuditQuery {
    /// One lesson's trail: `?session=ID`, else the room's current lesson.
    pub async fn lesson(app: &App, room: String, q: LessonQuery) -> Result<AuditQuery, ApiError> {
        let session = lesson(app, &room, q).await?;
        Ok(AuditQuery {
            room: Some(room),
            session: Some(session.id),
            limit: None,
        })
    }
}

/// `GET /api/sessions/{room}/audit`: one lesson's corrections trail.
pub async fn room_audit(app: App, who: Principal, room: String, q: LessonQuery) -> ApiResult {
    if !who.manages(&room) {
        return Err(ApiError::forbidden(
            "administrators, or the room's teacher for that room",
        ));
    }
    let q = AuditQuery::lesson(&app, room, q).await?;
    audit(app, who, q).await
}

/// The corrections trail: administrators see all of it, a room's teacher
/// that room's.
pub async fn audit(app: App, who: Principal, q: AuditQuery) -> ApiResult {
    let allowed = who.is_admin() || q.room.as_deref().is_some_and(|room| who.manages(room));
    if !allowed {
        return Err(ApiError::forbidden(
            "administrators, or the room's teacher for that room",
        ));
    }
    let rows = app
        .store
        .audit_trail(
            q.room.as_deref(),
            q.session,
            q.limit.unwrap_or(200).clamp(1, 5000),
        )
        .await?;
    let entries: Vec<_> = rows
        .iter()
        .map(|a| {
            json!({ "room": a.room, "session_id": a.session_id, "identity": a.identity, "action": a.action, "status": a.status,
                    "reason": a.reason, "author": a.author, "at": a.at })
        })
        .collect();
    Ok(json_reply(&json!({ "audit": entries }), StatusCode::OK))
}
