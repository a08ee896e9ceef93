//! [`RoomServiceClient`]: LiveKit's RoomService over Twirp JSON.

use std::fmt;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use crate::error::{code_for_status, excerpt, Error, Method};
use crate::model::{ListParticipantsResponse, ListRoomsResponse, ParticipantInfo, Room};
use crate::token::{self, VideoGrant};

/// How long one call may take (connect, request, whole answer) unless
/// [`RoomServiceClient::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks LiveKit's RoomService who is where.
///
/// Each call mints its own short-lived token (see [`crate::token`]) carrying
/// only the grant that call needs. Cloning is cheap and shares the connection
/// pool.
#[derive(Clone)]
pub struct RoomServiceClient {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    api_secret: String,
    timeout: Duration,
}

impl fmt::Debug for RoomServiceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("RoomServiceClient")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RoomServiceClient {
    /// A client for the LiveKit server at `url` — the same URL browsers
    /// connect to: `wss://` is asked over `https://`, `ws://` over `http://`;
    /// `https://` and `http://` are used as they are; a trailing slash is
    /// fine, and a path prefix (a proxy's) is kept.
    pub fn new(url: &str, api_key: &str, api_secret: &str) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Self::with_http_client(http, url, api_key, api_secret)
    }

    /// Like [`RoomServiceClient::new`], sharing an existing `reqwest::Client`
    /// (its pool and settings; the per-call timeout still applies).
    pub fn with_http_client(
        http: reqwest::Client,
        url: &str,
        api_key: &str,
        api_secret: &str,
    ) -> Result<Self, Error> {
        if api_key.trim().is_empty() || api_secret.is_empty() {
            return Err(Error::Config(
                "the API key and secret must not be empty".into(),
            ));
        }
        Ok(RoomServiceClient {
            http,
            base_url: http_base_url(url)?,
            api_key: api_key.to_string(),
            api_secret: api_secret.to_string(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sets how long one call may take in all (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The `http(s)://` base the calls go to, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// `ListRooms` for these room names; rooms LiveKit does not have are
    /// simply not in the answer. An empty `names` lists every room (see
    /// [`RoomServiceClient::list_all_rooms`]).
    pub async fn list_rooms<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<Room>, Error> {
        let body = if names.is_empty() {
            json!({})
        } else {
            json!({ "names": names.iter().map(AsRef::as_ref).collect::<Vec<&str>>() })
        };
        let answer: ListRoomsResponse = self
            .call(Method::ListRooms, VideoGrant::room_list(), &body)
            .await?;
        Ok(answer.rooms)
    }

    /// `ListRooms` without a filter: every room LiveKit has.
    pub async fn list_all_rooms(&self) -> Result<Vec<Room>, Error> {
        self.list_rooms::<&str>(&[]).await
    }

    /// `ListParticipants` for `room`.
    ///
    /// A default self-hosted LiveKit answers an empty list for a room it does
    /// not have (others answer Twirp `not_found`, see
    /// [`Error::is_not_found`]): an empty list alone does not prove that a room
    /// ended — `ListRooms` does.
    pub async fn list_participants(&self, room: &str) -> Result<Vec<ParticipantInfo>, Error> {
        let answer: ListParticipantsResponse = self
            .call(
                Method::ListParticipants,
                VideoGrant::room_admin(room),
                &json!({ "room": room }),
            )
            .await?;
        Ok(answer.participants)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        grant: VideoGrant,
        body: &serde_json::Value,
    ) -> Result<T, Error> {
        let token = token::mint(&self.api_key, &self.api_secret, grant, token::now_seconds())
            .map_err(|e| Error::Config(format!("cannot sign a token: {e}")))?;
        // The token is the only credential that travels; LiveKit quotes it
        // back in some 401 bodies.
        let hidden = [token.as_str()];
        let response = self
            .http
            .post(format!("{}{}", self.base_url, method.path()))
            .bearer_auth(&token)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(method, e, &hidden))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(method, e, &hidden))?;
        if (200..300).contains(&status) {
            serde_json::from_slice(&bytes).map_err(|e| Error::Malformed {
                method,
                status,
                detail: format!(
                    "{e}; body: {}",
                    excerpt(&String::from_utf8_lossy(&bytes), &hidden)
                ),
            })
        } else {
            Err(error_answer(method, status, &bytes, &hidden))
        }
    }

    fn transport_error(&self, method: Method, error: reqwest::Error, hidden: &[&str]) -> Error {
        if error.is_timeout() {
            return Error::Timeout {
                method,
                url: self.base_url.clone(),
                timeout: self.timeout,
            };
        }
        // reqwest's own message names the URL (ours is in the variant); the
        // causes below it say what actually happened.
        let error = error.without_url();
        let mut detail = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        Error::Unreachable {
            method,
            url: self.base_url.clone(),
            detail: excerpt(&detail, hidden),
        }
    }
}

/// Twirp's error body.
#[derive(Deserialize)]
struct TwirpError {
    code: Option<String>,
    msg: Option<String>,
}

fn error_answer(method: Method, status: u16, body: &[u8], hidden: &[&str]) -> Error {
    let twirp = serde_json::from_slice::<TwirpError>(body)
        .ok()
        .filter(|t| t.code.as_deref().is_some_and(|c| !c.is_empty()));
    let text = String::from_utf8_lossy(body);
    match (status, twirp) {
        (401, Some(t)) => Error::Unauthorized {
            method,
            code: t.code,
            msg: excerpt(t.msg.as_deref().unwrap_or_default(), hidden),
        },
        (401, None) => Error::Unauthorized {
            method,
            code: None,
            msg: excerpt(&text, hidden),
        },
        (_, Some(t)) => Error::Twirp {
            method,
            status,
            code: excerpt(t.code.as_deref().unwrap_or_default(), hidden),
            msg: excerpt(t.msg.as_deref().unwrap_or_default(), hidden),
        },
        (_, None) => Error::Twirp {
            method,
            status,
            code: code_for_status(status).to_string(),
            msg: excerpt(&text, hidden),
        },
    }
}

/// The `http(s)://` base for a LiveKit URL.
fn http_base_url(url: &str) -> Result<String, Error> {
    let trimmed = url.trim();
    let (scheme, rest) = trimmed
        .split_once("://")
        .ok_or_else(|| Error::Config(format!("LiveKit URL {trimmed:?} has no scheme")))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "wss" | "https" => "https",
        "ws" | "http" => "http",
        other => {
            return Err(Error::Config(format!(
                "LiveKit URL scheme {other:?} is not ws, wss, http or https"
            )))
        }
    };
    let candidate = format!("{scheme}://{rest}");
    let parsed = reqwest::Url::parse(&candidate)
        .map_err(|e| Error::Config(format!("LiveKit URL {trimmed:?}: {e}")))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::Config(format!(
            "LiveKit URL {trimmed:?} has no host"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::Config(
            "LiveKit URL must not carry credentials (use the API key and secret)".into(),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Error::Config(format!(
            "LiveKit URL {trimmed:?} must not have a query or fragment"
        )));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_livekit_urls_to_http() {
        for (url, base) in [
            ("wss://lk.example.org", "https://lk.example.org"),
            ("wss://lk.example.org/", "https://lk.example.org"),
            ("WSS://LK.example.org:7881/", "https://lk.example.org:7881"),
            ("ws://127.0.0.1:7880", "http://127.0.0.1:7880"),
            (
                "https://lk.example.org/livekit/",
                "https://lk.example.org/livekit",
            ),
            ("http://localhost:7880", "http://localhost:7880"),
            (" https://lk.example.org ", "https://lk.example.org"),
        ] {
            assert_eq!(http_base_url(url).unwrap(), base, "{url}");
        }
        for bad in [
            "lk.example.org",
            "ftp://lk.example.org",
            "wss://",
            "https://user:pw@lk.example.org",
            "https://lk.example.org/?x=1",
        ] {
            assert!(matches!(http_base_url(bad), Err(Error::Config(_))), "{bad}");
        }
    }

    #[test]
    fn refuses_empty_credentials_and_hides_the_secret() {
        assert!(RoomServiceClient::new("wss://x.org", "", "s").is_err());
        assert!(RoomServiceClient::new("wss://x.org", "k", "").is_err());
        let client = RoomServiceClient::new("wss://x.org", "key", "sup3rsecret").unwrap();
        assert!(!format!("{client:?}").contains("sup3rsecret"));
        assert_eq!(client.timeout(), DEFAULT_TIMEOUT);
        let client = client.with_timeout(Duration::from_millis(250));
        assert_eq!(client.timeout(), Duration::from_millis(250));
    }

    #[test]
    fn error_answers_map_to_the_right_variant() {
        let m = Method::ListRooms;
        assert_eq!(
            error_answer(m, 401, b"invalid token: signature is invalid\n", &[]),
            Error::Unauthorized {
                method: m,
                code: None,
                msg: "invalid token: signature is invalid".into()
            }
        );
        assert_eq!(
            error_answer(
                m,
                401,
                br#"{"code":"unauthenticated","msg":"permissions denied"}"#,
                &[]
            ),
            Error::Unauthorized {
                method: m,
                code: Some("unauthenticated".into()),
                msg: "permissions denied".into()
            }
        );
        assert_eq!(
            error_answer(
                m,
                500,
                br#"{"code":"internal","msg":"boom","meta":{}}"#,
                &[]
            ),
            Error::Twirp {
                method: m,
                status: 500,
                code: "internal".into(),
                msg: "boom".into()
            }
        );
        let e = error_answer(
            m,
            404,
            br#"{"code":"not_found","msg":"room not found"}"#,
            &[],
        );
        assert!(e.is_not_found());
        assert_eq!(
            error_answer(m, 502, b"<html>Bad Gateway</html>", &[]),
            Error::Twirp {
                method: m,
                status: 502,
                code: "unavailable".into(),
                msg: "<html>Bad Gateway</html>".into()
            }
        );
        assert_eq!(
            error_answer(m, 418, b"", &[]),
            Error::Twirp {
                method: m,
                status: 418,
                code: "unknown".into(),
                msg: "(empty body)".into()
            }
        );
    }
}
