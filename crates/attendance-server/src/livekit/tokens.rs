//! LiveKit API keys and the two kinds of token signed with them: access
//! tokens (what a browser holds to join a room) and webhook tokens (what
//! LiveKit puts in `Authorization` when it posts an event). Both are HS256
//! JWTs signed with the API secret; each is refused where the other belongs.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The claims, the grant, signing and LiveKit's 60 s of clock skew are
/// attendance-livekit's: one definition of LiveKit's token format.
pub use attendance_livekit::token::{sign, Claims, VideoGrant, LEEWAY_SECONDS};

#[derive(Clone)]
pub struct KeyRing {
    secrets: HashMap<String, String>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("KeyRing")
            .field("keys", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        KeyRing {
            secrets: pairs.into_iter().collect(),
        }
    }

    /// Parses livekit-server's `LIVEKIT_KEYS` format: `key1: secret1, key2: secret2`
    /// (newlines work as separators too).
    pub fn parse_keys(text: &str) -> Result<Self, String> {
        let mut pairs = Vec::new();
        for entry in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (key, secret) = entry
                .split_once(':')
                .ok_or_else(|| format!("expected `key: secret`, found `{entry}`"))?;
            let (key, secret) = (key.trim(), secret.trim());
            if key.is_empty() || secret.is_empty() {
                return Err(format!("empty key or secret in `{entry}`"));
            }
            pairs.push((key.to_string(), secret.to_string()));
        }
        if pairs.is_empty() {
            return Err("no keys given".into());
        }
        Ok(KeyRing::new(pairs))
    }

    pub fn insert(&mut self, key: String, secret: String) {
        self.secrets.insert(key, secret);
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    pub fn secret(&self, key: &str) -> Option<&str> {
        self.secrets.get(key).map(String::as_str)
    }

    /// Any one key, for minting tokens from the command line or demo mode.
    pub fn first(&self) -> Option<(&str, &str)> {
        let mut keys: Vec<_> = self.secrets.iter().collect();
        keys.sort();
        keys.first().map(|(k, s)| (k.as_str(), s.as_str()))
    }

    /// Verifies signature, issuer and `exp`/`nbf` (with leeway); returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let issuer = peek_issuer(token).ok_or(TokenError::Malformed)?;
        let secret = self.secret(&issuer).ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.set_issuer(&[issuer.as_str()]);
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
            _ => TokenError::Malformed,
        })?;
        Ok(data.claims)
    }

    /// Verifies an access token and says who holds it.
    pub fn principal(&self, token: &str) -> Result<Principal, TokenError> {
        let claims = self.verify(token)?;
        if claims.sha256.is_some() {
            return Err(TokenError::WebhookTokenAsUserToken);
        }
        let grant = claims.video.ok_or(TokenError::NoGrant)?;
        let identity = claims.sub.unwrap_or_default();
        let role = if grant.room_create || grant.room_list {
            Role::Admin
        } else if let (true, Some(room)) = (grant.room_admin, grant.room.clone()) {
            Role::Teacher { room }
        } else if let (true, Some(room), false) =
            (grant.room_join, grant.room.clone(), identity.is_empty())
        {
            Role::Participant { room }
        } else {
            return Err(TokenError::NoGrant);
        };
        Ok(Principal {
            identity,
            name: claims.name.filter(|n| !n.is_empty()),
            role,
        })
    }

    /// Mints an access token the way LiveKit's server SDKs do.
    pub fn mint_access_token(&self, request: &TokenRequest) -> Result<String, String> {
        let (key, secret) = self.first().ok_or("no API key configured")?;
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let grant = match request.role {
            RoleRequest::Student => VideoGrant {
                room: Some(request.room.clone()),
                room_join: true,
                can_publish: Some(true),
                can_subscribe: Some(true),
                ..VideoGrant::default()
            },
            RoleRequest::Teacher => VideoGrant {
                room: Some(request.room.clone()),
                room_join: true,
                room_admin: true,
                can_publish: Some(true),
                can_subscribe: Some(true),
                ..VideoGrant::default()
            },
            RoleRequest::Admin => VideoGrant {
                room: Some(request.room.clone()),
                room_join: true,
                room_admin: true,
                room_create: true,
                room_list: true,
                ..VideoGrant::default()
            },
        };
        let claims = Claims {
            iss: key.to_string(),
            sub: Some(request.identity.clone()),
            name: request.name.clone(),
            metadata: request.metadata.clone(),
            nbf: Some(now),
            exp: now + request.ttl.as_secs() as i64,
            video: Some(grant),
            sha256: None,
        };
        sign(&claims, secret)
    }

    /// Signs a webhook body the way LiveKit does (used by demo mode, which
    /// feeds its fabricated events through the real verification path).
    pub fn sign_webhook(&self, body: &[u8]) -> Result<String, String> {
        let (key, secret) = self.first().ok_or("no API key configured")?;
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let claims = Claims {
            iss: key.to_string(),
            sub: None,
            name: None,
            metadata: None,
            nbf: Some(now),
            exp: now + 300,
            video: None,
            sha256: Some(body_sha256(body)),
        };
        sign(&claims, secret)
    }
}

/// Standard, padded base64 of the body's SHA-256: LiveKit's `sha256` claim.
pub fn body_sha256(body: &[u8]) -> String {
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body))
}

/// Reads `iss` without verifying, only to pick the secret to verify with.
fn peek_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Issuer {
        iss: String,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Issuer>(&bytes).ok().map(|i| i.iss)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("missing Authorization")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("unknown API key")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("a webhook token is not an access token")]
    WebhookTokenAsUserToken,
    #[error("token grants no room access")]
    NoGrant,
}

impl TokenError {
    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            TokenError::Missing => "missing_token",
            TokenError::Malformed => "malformed_token",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::WebhookTokenAsUserToken => "webhook_token_as_user_token",
            TokenError::NoGrant => "no_grant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Participant { room: String },
    Teacher { room: String },
    Admin,
}

/// Who is asking, from a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub identity: String,
    pub name: Option<String>,
    pub role: Role,
}

impl Principal {
    /// Teachers of the room and administrators see and manage everyone.
    pub fn manages(&self, room: &str) -> bool {
        match &self.role {
            Role::Admin => true,
            Role::Teacher { room: own } => own == room,
            Role::Participant { .. } => false,
        }
    }

    /// A participant of this room (teachers and admins also count).
    pub fn belongs_to(&self, room: &str) -> bool {
        self.manages(room) || matches!(&self.role, Role::Participant { room: own } if own == room)
    }

    /// May this principal read `identity`'s attendance in `room`?
    pub fn may_read(&self, room: &str, identity: &str) -> bool {
        self.manages(room) || (self.belongs_to(room) && self.identity == identity)
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleRequest {
    Student,
    Teacher,
    Admin,
}

#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub identity: String,
    pub room: String,
    pub name: Option<String>,
    pub metadata: Option<String>,
    pub role: RoleRequest,
    pub ttl: Duration,
}

/// The token from an `Authorization` header: LiveKit sends it raw; proxies and
/// browsers send `Bearer <token>`. Both are accepted.
pub fn token_from_header(value: Option<&str>) -> Option<&str> {
    let value = value?.trim();
    let token = match value.split_once(char::is_whitespace) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ if value.eq_ignore_ascii_case("bearer") => "",
        _ => value,
    };
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::parse_keys("devkey: secret, other: othersecret").unwrap()
    }

    fn token(role: RoleRequest, room: &str, identity: &str) -> String {
        ring()
            .mint_access_token(&TokenRequest {
                identity: identity.into(),
                room: room.into(),
                name: None,
                metadata: None,
                role,
                ttl: Duration::from_secs(60),
            })
            .unwrap()
    }

    #[test]
    fn parses_livekit_keys_format() {
        let ring = KeyRing::parse_keys("key1: secret1, key2: secret2").unwrap();
        assert_eq!(ring.secret("key1"), Some("secret1"));
        assert_eq!(ring.secret("key2"), Some("secret2"));
        assert!(KeyRing::parse_keys("nocolon").is_err());
        assert!(KeyRing::parse_keys("").is_err());
    }

    #[test]
    fn grants_map_to_roles() {
        let r = ring();
        let student = r
            .principal(&token(RoleRequest::Student, "math", "s1"))
            .unwrap();
        assert_eq!(
            student.role,
            Role::Participant {
                room: "math".into()
            }
        );
        assert!(student.may_read("math", "s1"));
        assert!(!student.may_read("math", "s2"));
        assert!(!student.may_read("art", "s1"));
        let teacher = r
            .principal(&token(RoleRequest::Teacher, "math", "t"))
            .unwrap();
        assert!(teacher.manages("math") && !teacher.manages("art"));
        let admin = r
            .principal(&token(RoleRequest::Admin, "math", "a"))
            .unwrap();
        assert!(admin.manages("art"));
    }

    #[test]
    fn webhook_tokens_are_not_user_tokens() {
        let r = ring();
        let webhook = r.sign_webhook(b"{}").unwrap();
        assert_eq!(
            r.principal(&webhook),
            Err(TokenError::WebhookTokenAsUserToken)
        );
    }

    #[test]
    fn bearer_prefix_is_optional() {
        assert_eq!(token_from_header(Some("Bearer abc")), Some("abc"));
        assert_eq!(token_from_header(Some("abc")), Some("abc"));
        assert_eq!(token_from_header(Some("Bearer ")), None);
        assert_eq!(token_from_header(None), None);
    }
}
