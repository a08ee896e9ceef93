//! Who may open a live socket and keep it open: the token checked before
//! the upgrade or in the first message, the per-identity cap, a fresh
//! token over an open socket, and the close codes for each refusal.

use std::time::Duration;

use tokio::time::Instant;
use warp::http::StatusCode;

use super::error::ApiError;
use super::App;
use crate::domain::now;
use crate::live::hub::ConnectionSlot;
use crate::livekit::tokens::LEEWAY_SECONDS;
use crate::livekit::Principal;

/// Live connections one identity may hold in one room (tabs, devices).
const MAX_CONNECTIONS_PER_IDENTITY: usize = 8;

/// Close codes of our own (4000–4999 are the application's).
pub mod close_code {
    /// The token expired (or is invalid): fetch a fresh one, then reconnect.
    pub const TOKEN: u16 = 4001;
    /// The token is valid but not for this room.
    pub const FORBIDDEN: u16 = 4003;
    /// This identity already has its maximum of live sockets in the room.
    pub const TOO_MANY_SOCKETS: u16 = 4029;
}

/// An authenticated socket's place: who, until when, and its slot.
pub(super) struct Admitted {
    pub(super) who: Principal,
    /// When the token stops being accepted (its `exp` plus the leeway).
    pub(super) expires: Instant,
    pub(super) slot: ConnectionSlot,
}

/// Why a socket is not admitted: an HTTP status before the upgrade, a
/// close code after it (first-message authentication).
pub(super) struct Refusal {
    pub(super) error: ApiError,
    pub(super) close_code: u16,
}

pub(super) fn admit(app: &App, room: &str, token: &str, pinned: bool) -> Result<Admitted, Refusal> {
    let refused = |error: ApiError, close_code| Refusal { error, close_code };
    let (who, exp) = app
        .keys
        .principal(token)
        .and_then(|who| Ok((who, app.keys.verify(token)?.exp)))
        .map_err(|e| refused(e.into(), close_code::TOKEN))?;
    // A lesson named by id may be taught by another room's teacher (see `lessons::member`).
    let may_teach = pinned && matches!(who.role, crate::livekit::Role::Teacher { .. });
    if !who.belongs_to(room) && !may_teach {
        return Err(refused(
            ApiError::forbidden("this token is for another room"),
            close_code::FORBIDDEN,
        ));
    }
    let Some(slot) = app
        .live
        .hub
        .admit(room, &who.identity, MAX_CONNECTIONS_PER_IDENTITY)
    else {
        return Err(refused(
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many live connections for this identity",
            ),
            close_code::TOO_MANY_SOCKETS,
        ));
    };
    Ok(Admitted {
        who,
        expires: expiry(exp),
        slot,
    })
}

/// The instant a token whose `exp` is `exp` (unix seconds) stops being
/// accepted.
pub(super) fn expiry(exp: i64) -> Instant {
    let left = exp
        .saturating_add(LEEWAY_SECONDS as i64)
        .saturating_sub(now().timestamp())
        .clamp(0, 10 * 365 * 24 * 3600);
    Instant::now() + Duration::from_secs(left as u64)
}

/// A fresh token sent over an open socket: same identity, same room and
/// the same reach; returns it and its expiry.
pub(super) fn refresh(
    app: &App,
    room: &str,
    who: &Principal,
    token: &str,
) -> Result<(Principal, Instant), String> {
    let fresh = app.keys.principal(token).map_err(|e| e.to_string())?;
    let exp = app.keys.verify(token).map_err(|e| e.to_string())?.exp;
    if fresh.identity != who.identity
        || !fresh.belongs_to(room)
        || fresh.manages(room) != who.manages(room)
    {
        return Err("the new token must be for the same identity, room and role".into());
    }
    Ok((fresh, expiry(exp)))
}
