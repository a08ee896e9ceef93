//! The WebSocket handshake of the live route: the upgrade request checked
//! and answered (RFC 6455 §4.2), and the subprotocols a client offered
//! (ours, and the one that carries its token).

use headers::{
    Connection, HeaderMapExt, SecWebsocketAccept, SecWebsocketKey, SecWebsocketVersion, Upgrade,
};
use hyper::upgrade::OnUpgrade;
use warp::http::{header, HeaderMap, StatusCode};
use warp::reply::{Reply, Response};
use warp::Filter;

use super::error::ApiError;

/// The subprotocol this service speaks, and the prefix of the one that
/// carries a token.
pub const PROTOCOL: &str = "attendance.v1";
pub const TOKEN_PROTOCOL: &str = "access_token.";

/// The parts of a WebSocket upgrade request (RFC 6455 §4.2.1) the server
/// needs to answer it. warp's own `ws()` filter cannot size tungstenite's
/// buffers, so the upgrade is done here with hyper's [`OnUpgrade`], checked
/// and answered with the typed headers warp's filter uses.
pub(super) struct UpgradeRequest {
    pub key: SecWebsocketKey,
    pub on_upgrade: OnUpgrade,
}

pub(super) fn upgrade_request(
) -> impl Filter<Extract = (Result<UpgradeRequest, Box<Response>>,), Error = std::convert::Infallible>
       + Clone {
    warp::header::headers_cloned()
        .and(warp::ext::optional::<OnUpgrade>())
        .map(|headers: HeaderMap, on_upgrade: Option<OnUpgrade>| {
            let is_websocket = headers
                .typed_get::<Connection>()
                .is_some_and(|c| c.contains("upgrade"))
                && headers
                    .get(header::UPGRADE)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
                && headers.typed_get::<SecWebsocketVersion>() == Some(SecWebsocketVersion::V13);
            match (headers.typed_get::<SecWebsocketKey>(), on_upgrade) {
                (Some(key), Some(on_upgrade)) if is_websocket => Ok(UpgradeRequest { key, on_upgrade }),
                _ => Err(Box::new(
                    ApiError::new(
                        StatusCode::UPGRADE_REQUIRED,
                        "this endpoint is a WebSocket (version 13): connect with a WebSocket client",
                    )
                    .into_response(),
                )),
            }
        })
}

pub(super) fn switching_protocols(key: SecWebsocketKey) -> Response {
    let mut response = Response::default();
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.typed_insert(Connection::upgrade());
    headers.typed_insert(Upgrade::websocket());
    headers.typed_insert(SecWebsocketAccept::from(key));
    response
}

/// What `Sec-WebSocket-Protocol` offered.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Offered {
    /// Any subprotocol at all.
    pub any: bool,
    /// [`PROTOCOL`] among them.
    pub ours: bool,
    pub token: Option<String>,
}

pub(super) fn offered(header: Option<&str>) -> Offered {
    let mut offered = Offered::default();
    for protocol in header
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        offered.any = true;
        if protocol == PROTOCOL {
            offered.ours = true;
        } else if let Some(token) = protocol.strip_prefix(TOKEN_PROTOCOL) {
            offered.token = Some(token.to_string());
        }
    }
    offered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subprotocols_carry_the_token() {
        assert_eq!(offered(None), Offered::default());
        let both = offered(Some("attendance.v1, access_token.a.b-c_d"));
        assert!(both.any && both.ours);
        assert_eq!(both.token.as_deref(), Some("a.b-c_d"));
        let other = offered(Some("chat"));
        assert!(other.any && !other.ours && other.token.is_none());
    }
}
