//! Teachers' corrections of attendance, with a reason, and their audit trail.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;

use super::error::{json_reply, ApiError, ApiResult};
use super::lessons::{acting, lesson, LessonQuery};
use super::reports::participant_report;
use super::App;
use crate::domain::{now, AuditRow, SessionRow};
use crate::livekit::Principal;
use crate::outbound::events;
use crate::store::corrections::Correction;
use attendance_rules::EffectiveStatus;

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
    let who = acting(&app, who, &room, q).await?;
    if !who.manages(&room) {
        return Err(ApiError::forbidden(
            "only the room's teacher or an administrator may correct attendance",
        ));
    }
    require_identity(&who)?;
    let body: OverrideBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid override: {e}")))?;
    if EffectiveStatus::parse(&body.status).is_none() {
        return Err(ApiError::bad_request(format!(
            "status must be one of {}",
            EffectiveStatus::ALL.map(EffectiveStatus::as_str).join(", ")
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
    let audit = audit_entry(&session, &identity, Some(&body.status), reason, &who);
    let outbound = events::attendance_corrected(facts, &audit, &app.settings.classifier);
    let correction = Correction {
        identity: &identity,
        status: Some(&body.status),
        reason,
        author: &who.identity,
        at_ms: audit.at.timestamp_millis(),
    };
    app.store
        .set_override(&session, correction, &outbound)
        .await?;
    tracing::info!(room = %room, session = session.id, identity = %identity, by = %who.identity, status = %body.status, "attendance corrected");
    announce(&app, &session, &identity).await?;
    app.outbound.kick();
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

/// The audit entry a correction (`status`) or its removal (`None`) makes now.
fn audit_entry(
    session: &SessionRow,
    identity: &str,
    status: Option<&str>,
    reason: &str,
    who: &Principal,
) -> AuditRow {
    AuditRow {
        room: session.room.clone(),
        session_id: Some(session.id),
        identity: identity.to_string(),
        action: if status.is_some() { "set" } else { "remove" }.to_string(),
        status: status.map(str::to_string),
        reason: reason.to_string(),
        author: who.identity.clone(),
        at: now(),
    }
}

/// Every correction is attributed to someone in the audit trail: a token
/// without an identity (`sub`) may read reports but not correct them.
fn require_identity(who: &Principal) -> Result<(), ApiError> {
    if who.identity.trim().is_empty() {
        return Err(ApiError::forbidden(
            "corrections are signed with the token's identity, and this token has none: \
             mint it with an identity (`sub`)",
        ));
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
    let who = acting(&app, who, &room, lesson_q).await?;
    if !who.manages(&room) {
        return Err(ApiError::forbidden(
            "only the room's teacher or an administrator may correct attendance",
        ));
    }
    require_identity(&who)?;
    let reason = q.reason.unwrap_or_default();
    let reason = correction_reason(
        &reason,
        "removing a correction needs a reason (?reason=…) of 1 to 1000 bytes",
    )?;
    let session = lesson(&app, &room, lesson_q).await?;
    let facts = app.store.session_facts(&session, Some(&identity)).await?;
    let audit = audit_entry(&session, &identity, None, reason, &who);
    let outbound = events::attendance_corrected(facts, &audit, &app.settings.classifier);
    let correction = Correction {
        identity: &identity,
        status: None,
        reason,
        author: &who.identity,
        at_ms: audit.at.timestamp_millis(),
    };
    if !app
        .store
        .remove_override(&session, correction, &outbound)
        .await?
    {
        return Err(ApiError::not_found(format!(
            "`{identity}` has no override in this lesson of `{room}`"
        )));
    }
    tracing::info!(room = %room, session = session.id, identity = %identity, by = %who.identity, "attendance correction removed");
    announce(&app, &session, &identity).await?;
    app.outbound.kick();
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
