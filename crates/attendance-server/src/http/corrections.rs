//! Teachers' corrections of attendance, with a reason, and their audit trail.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;

use super::error::{json_reply, ApiError, ApiResult};
use super::reports::participant_report;
use super::App;
use crate::domain::{now, AuditRow};
use crate::livekit::Principal;
use crate::outbound::events;
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

pub async fn set_override(
    app: App,
    who: Principal,
    room: String,
    identity: String,
    body: Bytes,
) -> ApiResult {
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
    let facts = app.store.participant_facts(&room, &identity).await?;
    if facts.session.is_none() {
        return Err(ApiError::no_session(&room));
    }
    // A typo must not invent a student who "never joined".
    if facts.cycles.is_empty() && facts.roster.is_empty() && facts.overrides.is_empty() {
        return Err(ApiError::not_found(format!(
            "`{identity}` is neither on the roster of `{room}` nor seen in it"
        )));
    }
    let audit = audit_entry(&room, &identity, Some(&body.status), reason, &who);
    let outbound = events::attendance_corrected(facts, &audit, &app.settings.classifier);
    app.store
        .set_override(
            &room,
            &identity,
            &body.status,
            reason,
            &who.identity,
            audit.at.timestamp_millis(),
            &outbound,
        )
        .await?;
    tracing::info!(room = %room, identity = %identity, by = %who.identity, status = %body.status, "attendance corrected");
    app.live.changed(&room, Some(&identity));
    app.outbound.kick();
    participant_report(app, who, room, identity).await
}

/// The audit entry a correction (`status`) or its removal (`None`) makes now.
fn audit_entry(
    room: &str,
    identity: &str,
    status: Option<&str>,
    reason: &str,
    who: &Principal,
) -> AuditRow {
    AuditRow {
        room: room.to_string(),
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
    q: ReasonQuery,
) -> ApiResult {
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
    let facts = app.store.participant_facts(&room, &identity).await?;
    let audit = audit_entry(&room, &identity, None, reason, &who);
    let outbound = events::attendance_corrected(facts, &audit, &app.settings.classifier);
    let at_ms = audit.at.timestamp_millis();
    if !app
        .store
        .remove_override(&room, &identity, reason, &who.identity, at_ms, &outbound)
        .await?
    {
        return Err(ApiError::not_found(format!(
            "`{identity}` has no override in `{room}`"
        )));
    }
    tracing::info!(room = %room, identity = %identity, by = %who.identity, "attendance correction removed");
    app.live.changed(&room, Some(&identity));
    app.outbound.kick();
    participant_report(app, who, room, identity).await
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    room: Option<String>,
    limit: Option<i64>,
}

impl AuditQuery {
    /// One room's trail.
    pub fn room(room: String) -> AuditQuery {
        AuditQuery {
            room: Some(room),
            limit: None,
        }
    }
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
        .audit_trail(q.room.as_deref(), q.limit.unwrap_or(200).clamp(1, 5000))
        .await?;
    let entries: Vec<_> = rows
        .iter()
        .map(|a| {
            json!({ "room": a.room, "identity": a.identity, "action": a.action, "status": a.status,
                    "reason": a.reason, "author": a.author, "at": a.at })
        })
        .collect();
    Ok(json_reply(&json!({ "audit": entries }), StatusCode::OK))
}
