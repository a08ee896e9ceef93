//! Which lesson a `/api/sessions/{room}/…` request is about: the one named
//! by `?session=ID`, else the room's current one (the one whose window
//! contains now, else the next upcoming, else the most recent).

use serde::Deserialize;

use super::error::ApiError;
use super::App;
use crate::domain::{now, SessionRow};
use crate::livekit::{Principal, Role};

/// `?session=ID` on every `/api/sessions/{room}/…` route.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct LessonQuery {
    pub session: Option<i64>,
}

/// The 404 for a room nobody scheduled and nobody used.
pub fn no_session(room: &str) -> ApiError {
    ApiError::not_found(format!("no session scheduled for room `{room}`"))
}

/// The lesson addressed: `?session=ID` (which must be in `room`), else the
/// room's current one.
pub async fn lesson(app: &App, room: &str, q: LessonQuery) -> Result<SessionRow, ApiError> {
    match q.session {
        Some(id) => match app.store.session_by_id(id).await? {
            Some(session) if session.room == room => Ok(session),
            _ => Err(ApiError::not_found(format!(
                "no session {id} in room `{room}`"
            ))),
        },
        None => app
            .store
            .current_session(room, now())
            .await?
            .map(|(session, _)| session)
            .ok_or_else(|| no_session(room)),
    }
}

/// Who acts on the lesson `q` names in `room`: a teacher whose token is
/// for another room acts as this room's teacher when the lesson's roster
/// (or its class's) lists them as a teacher; anyone else as themselves.
/// Only for a lesson named by id (`?session=ID`).
pub async fn acting(
    app: &App,
    who: Principal,
    room: &str,
    q: LessonQuery,
) -> Result<Principal, ApiError> {
    let (Role::Teacher { room: own }, Some(id)) = (&who.role, q.session) else {
        return Ok(who);
    };
    if own == room || !app.store.teaches(&who.identity, id, room).await? {
        return Ok(who);
    }
    Ok(Principal {
        role: Role::Teacher {
            room: room.to_string(),
        },
        ..who
    })
}

/// [`acting`], refused unless they then belong to `room`.
pub async fn member(
    app: &App,
    who: Principal,
    room: &str,
    q: LessonQuery,
) -> Result<Principal, ApiError> {
    let who = acting(app, who, room, q).await?;
    match who.belongs_to(room) {
        true => Ok(who),
        false => Err(ApiError::forbidden("this token is for another room")),
    }
}

/// Whether `q` names a lesson other than the room's current one.
pub fn pinned(q: LessonQuery) -> bool {
    q.session.is_some()
}
