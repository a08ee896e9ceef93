//! Rosters: who is expected in a lesson, and as what.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;

use super::error::{json_reply, ApiError, ApiResult};
use super::lessons::{lesson, LessonQuery};
use super::params::MAX_NAME_BYTES;
use super::App;
use crate::domain::{now, RosterEntry};
use crate::livekit::Principal;
use crate::outbound::events;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterBodyEntry {
    identity: String,
    name: Option<String>,
    role: Option<String>,
}

/// `PUT …/roster` takes `{"roster": [...]}` or the bare list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RosterBody {
    Wrapped { roster: Vec<RosterBodyEntry> },
    Bare(Vec<RosterBodyEntry>),
}

const MAX_ROSTER: usize = 5000;

pub fn roster_entries(entries: Vec<RosterBodyEntry>) -> Result<Vec<RosterEntry>, ApiError> {
    if entries.len() > MAX_ROSTER {
        return Err(ApiError::bad_request(format!(
            "a roster holds at most {MAX_ROSTER} people"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    entries
        .into_iter()
        .map(|e| {
            let identity = e.identity.trim().to_string();
            if identity.is_empty() || identity.len() > MAX_NAME_BYTES {
                return Err(ApiError::bad_request(format!(
                    "roster identities must be 1 to {MAX_NAME_BYTES} bytes"
                )));
            }
            if !seen.insert(identity.clone()) {
                return Err(ApiError::bad_request(format!(
                    "`{identity}` is on the roster twice"
                )));
            }
            let role = e.role.unwrap_or_else(|| "student".into());
            if role != "student" && role != "teacher" {
                return Err(ApiError::bad_request(format!(
                    "roster role must be student or teacher, not `{role}`"
                )));
            }
            Ok(RosterEntry {
                identity,
                name: e.name.unwrap_or_default(),
                role,
            })
        })
        .collect()
}

/// Replaces one lesson's roster (the current one, or `?session=ID`).
pub async fn put_roster(
    app: App,
    who: Principal,
    room: String,
    q: LessonQuery,
    body: Bytes,
) -> ApiResult {
    if !who.manages(&room) {
        return Err(ApiError::forbidden(
            "only the room's teacher or an administrator may set its roster",
        ));
    }
    let entries = match serde_json::from_slice::<RosterBody>(&body) {
        Ok(RosterBody::Wrapped { roster }) | Ok(RosterBody::Bare(roster)) => {
            roster_entries(roster)?
        }
        Err(e) => return Err(ApiError::bad_request(format!("invalid roster: {e}"))),
    };
    let session = lesson(&app, &room, q).await?;
    let before = app.store.roster(session.id, None).await?;
    let at = now();
    let announce = |updated: &_| {
        events::session_updated(Some(updated), updated, Some((&before, &entries)), at)
    };
    if !app
        .store
        .set_roster(&session, &entries, at.timestamp_millis(), announce)
        .await?
    {
        return Err(super::lessons::no_session(&room));
    }
    tracing::info!(room = %room, session = session.id, by = %who.identity, people = entries.len(), "roster set");
    app.live.changed(&room, None);
    app.outbound.kick();
    Ok(json_reply(
        &json!({ "room": room, "session_id": session.id, "roster": entries }),
        StatusCode::OK,
    ))
}

pub async fn get_roster(app: App, who: Principal, room: String, q: LessonQuery) -> ApiResult {
    let who = super::lessons::acting(&app, who, &room, q).await?;
    if !who.manages(&room) {
        return Err(ApiError::forbidden(
            "only the room's teacher or an administrator may read its roster",
        ));
    }
    let session = lesson(&app, &room, q).await?;
    let roster = app.store.roster(session.id, None).await?;
    Ok(json_reply(
        &json!({ "room": room, "session_id": session.id, "roster": roster }),
        StatusCode::OK,
    ))
}
