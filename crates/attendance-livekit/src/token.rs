//! The access tokens RoomService calls carry, minted as LiveKit's server SDKs
//! mint them: HS256 with the API secret, `iss` = API key, `nbf` = now,
//! `exp` = now + 10 min, and a `video` grant naming exactly what the call
//! needs (`roomList` for `ListRooms`; `roomAdmin` + `room` for
//! `ListParticipants`). One token per call.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// How long a RoomService token lives, as in LiveKit's SDKs.
pub const TOKEN_TTL: Duration = Duration::from_secs(600);

/// LiveKit allows 60 s of clock skew when it verifies a token.
pub const LEEWAY_SECONDS: u64 = 60;

/// The claims of a LiveKit token: an access token (`video` grant) or a
/// webhook token (`sha256` of the body). The one definition the service uses
/// to mint, sign and read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoGrant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// LiveKit's `video` grant (camelCase, as in every LiveKit token).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoGrant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub room_join: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub room_admin: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub room_create: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub room_list: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_subscribe: Option<bool>,
}

impl VideoGrant {
    /// What `ListRooms` needs.
    pub fn room_list() -> Self {
        VideoGrant {
            room_list: true,
            ..VideoGrant::default()
        }
    }

    /// What `ListParticipants` (and `GetParticipant`) need for `room`.
    pub fn room_admin(room: &str) -> Self {
        VideoGrant {
            room: Some(room.to_string()),
            room_admin: true,
            ..VideoGrant::default()
        }
    }
}

/// Signs a token for one RoomService call, valid from `now` for [`TOKEN_TTL`].
pub fn mint(
    api_key: &str,
    api_secret: &str,
    grant: VideoGrant,
    now_s: i64,
) -> Result<String, String> {
    let claims = Claims {
        iss: api_key.to_string(),
        sub: None,
        name: None,
        metadata: None,
        nbf: Some(now_s),
        exp: now_s + TOKEN_TTL.as_secs() as i64,
        video: Some(grant),
        sha256: None,
    };
    sign(&claims, api_secret)
}

/// Signs `claims` with the API secret (HS256), as LiveKit does.
pub fn sign(claims: &Claims, api_secret: &str) -> Result<String, String> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(api_secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}

/// Unix seconds now.
pub(crate) fn now_seconds() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn mints_what_livekit_expects() {
        let token = mint("devkey", "secret", VideoGrant::room_admin("math"), 1_000).unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_secret(b"secret"),
            &validation,
        )
        .unwrap();
        assert_eq!(
            data.claims,
            serde_json::json!({"iss": "devkey", "nbf": 1000, "exp": 1600,
                               "video": {"room": "math", "roomAdmin": true}})
        );
        let token = mint("devkey", "secret", VideoGrant::room_list(), 1_000).unwrap();
        let data = jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_secret(b"secret"),
            &validation,
        )
        .unwrap();
        assert_eq!(data.claims.video, Some(VideoGrant::room_list()));
        assert_eq!(data.header.alg, Algorithm::HS256);
    }
}
