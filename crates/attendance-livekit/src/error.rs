//! What can go wrong when asking LiveKit, in words a log line can carry.
//!
//! Nothing here ever holds the access token or the API secret: bodies quoted
//! in messages are cut short and scrubbed of the token first.

use std::fmt;
use std::time::Duration;

/// The RoomService calls this crate makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    ListRooms,
    ListParticipants,
}

impl Method {
    pub const ALL: [Method; 2] = [Method::ListRooms, Method::ListParticipants];

    /// The Twirp method name (`ListRooms`).
    pub fn name(self) -> &'static str {
        match self {
            Method::ListRooms => "ListRooms",
            Method::ListParticipants => "ListParticipants",
        }
    }

    /// The request path (`/twirp/livekit.RoomService/ListRooms`).
    pub fn path(self) -> &'static str {
        match self {
            Method::ListRooms => "/twirp/livekit.RoomService/ListRooms",
            Method::ListParticipants => "/twirp/livekit.RoomService/ListParticipants",
        }
    }

    /// The method whose request path this is.
    pub fn from_path(path: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.path() == path)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a RoomService call failed. Callers log it and back off; none of these
/// is ever a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client was set up wrong (a URL that is not `ws(s)://` or
    /// `http(s)://`, an empty key or secret, a TLS backend that would not
    /// start): no call was made.
    #[error("LiveKit client misconfigured: {0}")]
    Config(String),

    /// No HTTP answer: connection refused or reset, DNS, TLS, the server
    /// closing the connection without answering.
    #[error("LiveKit {method} at {url} unreachable: {detail}")]
    Unreachable {
        method: Method,
        url: String,
        detail: String,
    },

    /// No complete answer within the client's per-call timeout.
    #[error("LiveKit {method} at {url} timed out after {} ms", timeout.as_millis())]
    Timeout {
        method: Method,
        url: String,
        timeout: Duration,
    },

    /// HTTP 401: LiveKit refused the token. A bad signature or an expired
    /// token comes with a plain-text body (`code` is `None`); a valid token
    /// without the needed grant with Twirp's
    /// `{"code":"unauthenticated","msg":"permissions denied"}`.
    #[error("LiveKit {method} unauthorized (HTTP 401{}): {msg}", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Unauthorized {
        method: Method,
        code: Option<String>,
        msg: String,
    },

    /// Any other non-2xx answer: Twirp's `{"code","msg"}` with its HTTP
    /// status. A body that is not a Twirp error (a proxy's 502 page) gets the
    /// code Twirp clients give it from the status (`unavailable`, `internal`,
    /// `unknown`, …) and an excerpt of the body as `msg`.
    #[error("LiveKit {method} failed: HTTP {status} {code}: {msg}")]
    Twirp {
        method: Method,
        status: u16,
        code: String,
        msg: String,
    },

    /// A 2xx answer whose body is not the JSON the method returns.
    #[error("LiveKit {method} answered HTTP {status} with a malformed body: {detail}")]
    Malformed {
        method: Method,
        status: u16,
        detail: String,
    },
}

impl Error {
    /// The call that failed (`None` for [`Error::Config`]).
    pub fn method(&self) -> Option<Method> {
        match self {
            Error::Config(_) => None,
            Error::Unreachable { method, .. }
            | Error::Timeout { method, .. }
            | Error::Unauthorized { method, .. }
            | Error::Twirp { method, .. }
            | Error::Malformed { method, .. } => Some(*method),
        }
    }

    /// The HTTP status LiveKit answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { .. } => Some(401),
            Error::Twirp { status, .. } | Error::Malformed { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Twirp `not_found` (what some deployments answer to `ListParticipants`
    /// for a room that does not exist; a default self-hosted server answers
    /// 200 with an empty list instead).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Twirp { code, .. } if code == "not_found")
    }

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Unreachable { .. } => "unreachable",
            Error::Timeout { .. } => "timeout",
            Error::Unauthorized { .. } => "unauthorized",
            Error::Twirp { .. } => "twirp",
            Error::Malformed { .. } => "malformed",
        }
    }
}

/// The Twirp error code a Twirp client assigns to a non-Twirp HTTP answer.
pub(crate) fn code_for_status(status: u16) -> &'static str {
    match status {
        300..=400 => "internal",
        401 => "unauthenticated",
        403 => "permission_denied",
        404 => "bad_route",
        429 | 502..=504 => "unavailable",
        _ => "unknown",
    }
}

/// At most this many characters of a body go into a message.
const EXCERPT_CHARS: usize = 200;

/// A body fit for a log line: the token (if it were echoed) replaced, control
/// characters turned into spaces, cut to [`EXCERPT_CHARS`].
pub(crate) fn excerpt(text: &str, secret_parts: &[&str]) -> String {
    let mut text = text.to_string();
    for part in secret_parts.iter().filter(|p| !p.is_empty()) {
        text = text.replace(part, "[redacted]");
    }
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_string();
    }
    let mut out: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_informative() {
        let e = Error::Unauthorized {
            method: Method::ListParticipants,
            code: Some("unauthenticated".into()),
            msg: "permissions denied".into(),
        };
        assert_eq!(
            e.to_string(),
            "LiveKit ListParticipants unauthorized (HTTP 401, unauthenticated): permissions denied"
        );
        let e = Error::Unauthorized {
            method: Method::ListRooms,
            code: None,
            msg: "invalid token".into(),
        };
        assert_eq!(
            e.to_string(),
            "LiveKit ListRooms unauthorized (HTTP 401): invalid token"
        );
        let e = Error::Timeout {
            method: Method::ListRooms,
            url: "https://lk.example.org".into(),
            timeout: Duration::from_millis(1500),
        };
        assert_eq!(
            e.to_string(),
            "LiveKit ListRooms at https://lk.example.org timed out after 1500 ms"
        );
        assert_eq!(e.status(), None);
        assert_eq!(e.method(), Some(Method::ListRooms));
    }

    #[test]
    fn excerpts_hide_the_token_and_stay_short() {
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJrIn0.sig";
        let body = format!("invalid token {token}\nsecond line");
        let e = excerpt(&body, &[token]);
        assert_eq!(e, "invalid token [redacted] second line");
        assert_eq!(excerpt("   ", &[token]), "(empty body)");
        let long = "é".repeat(500);
        let e = excerpt(&long, &[]);
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert!(e.ends_with('…'));
    }

    #[test]
    fn methods_round_trip_their_paths() {
        for m in Method::ALL {
            assert_eq!(Method::from_path(m.path()), Some(m));
        }
        assert_eq!(
            Method::from_path("/twirp/livekit.RoomService/DeleteRoom"),
            None
        );
    }
}
