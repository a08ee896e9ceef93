//! LiveKit webhooks: verification exactly as LiveKit's own receivers do it
//! (`livekit/protocol/webhook.ReceiveWebhookEvent`), and the protojson
//! `WebhookEvent` decoded with unknown fields ignored.

use attendance_livekit::model::{disconnect_reason, TrackSource};
use serde::{Deserialize, Deserializer};
use subtle::ConstantTimeEq;

use super::tokens::{body_sha256, token_from_header, KeyRing, TokenError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("token has no sha256 claim: not a webhook token")]
    NotAWebhookToken,
    #[error("body hash does not match the token's sha256 claim")]
    BodyHashMismatch,
}

impl WebhookError {
    pub fn label(&self) -> &'static str {
        match self {
            WebhookError::Token(e) => e.label(),
            WebhookError::NotAWebhookToken => "not_a_webhook_token",
            WebhookError::BodyHashMismatch => "body_hash_mismatch",
        }
    }
}

/// Verifies the `Authorization` header against the raw body bytes; returns
/// the API key that signed it.
pub fn verify(
    keys: &KeyRing,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<String, WebhookError> {
    let token = token_from_header(authorization).ok_or(TokenError::Missing)?;
    let claims = keys.verify(token)?;
    let claimed = claims.sha256.ok_or(WebhookError::NotAWebhookToken)?;
    if claims.video.is_some() {
        // An access token that happens to carry a hash is still not LiveKit's.
        return Err(WebhookError::NotAWebhookToken);
    }
    // Hash the bytes as received: LiveKit's JSON is not canonical.
    let actual = body_sha256(body);
    if actual.as_bytes().ct_eq(claimed.as_bytes()).into() {
        Ok(claims.iss)
    } else {
        Err(WebhookError::BodyHashMismatch)
    }
}

/// The fields of LiveKit's `WebhookEvent` that attendance needs. Zero values
/// are omitted by protojson, hence the defaults everywhere.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    #[serde(default)]
    pub event: String,
    #[serde(default)]
    pub id: String,
    #[serde(default, deserialize_with = "int64")]
    pub created_at: i64,
    #[serde(default)]
    pub room: Option<RoomInfo>,
    #[serde(default)]
    pub participant: Option<ParticipantInfo>,
    /// On `track_published`/`track_unpublished`.
    #[serde(default)]
    pub track: Option<TrackInfo>,
}

/// The fields of LiveKit's `TrackInfo` that media time needs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackInfo {
    #[serde(default)]
    pub sid: String,
    /// `CAMERA`, `MICROPHONE`, `SCREEN_SHARE`, …; `UNKNOWN` when omitted.
    #[serde(default)]
    pub source: TrackSource,
    #[serde(default)]
    pub muted: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomInfo {
    #[serde(default)]
    pub sid: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantInfo {
    #[serde(default)]
    pub sid: String,
    #[serde(default)]
    pub identity: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub metadata: String,
    #[serde(default, deserialize_with = "int64")]
    pub joined_at: i64,
    #[serde(default, deserialize_with = "int64")]
    pub joined_at_ms: i64,
    /// `STANDARD`, `INGRESS`, `EGRESS`, `SIP`, `AGENT` (numbers are mapped to names).
    #[serde(default, deserialize_with = "participant_kind")]
    pub kind: String,
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
    /// Why the connection closed (`CLIENT_INITIATED`, `PARTICIPANT_REMOVED`,
    /// …), on `participant_left`/`participant_connection_aborted`; empty
    /// when LiveKit omits it (`UNKNOWN_REASON`).
    #[serde(default, deserialize_with = "disconnect_reason")]
    pub disconnect_reason: Option<String>,
}

impl ParticipantInfo {
    /// When this connection began, in unix ms, if LiveKit said.
    pub fn joined_at_ms(&self) -> Option<i64> {
        if self.joined_at_ms > 0 {
            Some(self.joined_at_ms)
        } else if self.joined_at > 0 {
            Some(self.joined_at * 1000)
        } else {
            None
        }
    }
}

impl WebhookEvent {
    /// Parses and checks what every stored event must have.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let event: WebhookEvent =
            serde_json::from_slice(body).map_err(|e| format!("malformed webhook JSON: {e}"))?;
        if event.id.is_empty() {
            return Err("webhook event has no id".into());
        }
        if event.event.is_empty() {
            return Err("webhook event has no event type".into());
        }
        Ok(event)
    }

    pub fn room_name(&self) -> &str {
        self.room.as_ref().map_or("", |r| r.name.as_str())
    }
}

/// protojson writes int64 as a string; accept a number too.
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int64 {
        Number(i64),
        Text(String),
    }
    match Option::<Int64>::deserialize(d)? {
        None => Ok(0),
        Some(Int64::Number(n)) => Ok(n),
        Some(Int64::Text(s)) if s.is_empty() => Ok(0),
        Some(Int64::Text(s)) => s
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("invalid int64 `{s}`"))),
    }
}

/// protojson writes enums by name; accept their numbers too
/// (`ParticipantInfo.Kind`: 0 STANDARD, 1 INGRESS, 2 EGRESS, 3 SIP, 4 AGENT).
fn participant_kind<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    const NAMES: [&str; 5] = ["STANDARD", "INGRESS", "EGRESS", "SIP", "AGENT"];
    enum_name(d, &NAMES)
}

/// An enum's name as protojson writes it, or the name of its number in
/// `names` (a number past the table is kept as digits).
fn enum_name<'de, D: Deserializer<'de>>(d: D, names: &[&str]) -> Result<String, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .and_then(|i| names.get(i as usize))
            .map_or_else(|| n.to_string(), |name| name.to_string()),
        _ => String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO_STYLE: &str = r#"{"event":"participant_joined", "room":{"sid":"RM_hycBMAjmt6Ub", "name":"math-101", "emptyTimeout":300, "creationTime":"1732528800", "creationTimeMs":"1732528800123"}, "participant":{"sid":"PA_k9c2sDfq3Lp1", "identity":"student-17", "name":"Ada", "state":"ACTIVE", "joinedAt":"1732529100", "joinedAtMs":"1732529100456", "version":2, "permission":{"canSubscribe":true, "canPublish":true}, "futureField":{"x":1}}, "id":"EV_3fH8kQ2mZx9T", "createdAt":"1732529100"}"#;

    #[test]
    fn parses_livekit_protojson() {
        let event = WebhookEvent::parse(GO_STYLE.as_bytes()).unwrap();
        assert_eq!(event.event, "participant_joined");
        assert_eq!(event.id, "EV_3fH8kQ2mZx9T");
        assert_eq!(event.created_at, 1732529100);
        assert_eq!(event.room_name(), "math-101");
        let p = event.participant.unwrap();
        assert_eq!(p.joined_at_ms(), Some(1732529100456));
        assert_eq!(p.identity, "student-17");
    }

    #[test]
    fn int64_as_number_and_omitted_zero_fields() {
        let body = r#"{"event":"participant_left","id":"EV_1","createdAt":1732529200,"participant":{"sid":"PA_1","identity":"s","joinedAt":1732529100}}"#;
        let event = WebhookEvent::parse(body.as_bytes()).unwrap();
        assert_eq!(event.created_at, 1732529200);
        assert_eq!(
            event.participant.unwrap().joined_at_ms(),
            Some(1732529100000)
        );
        assert!(event.room.is_none());
    }

    #[test]
    fn refuses_what_livekit_never_sends() {
        assert!(WebhookEvent::parse(b"{").is_err());
        assert!(WebhookEvent::parse(br#"{"event":"room_started"}"#).is_err());
        assert!(WebhookEvent::parse(br#"{"id":"EV_1","createdAt":"soon"}"#).is_err());
    }

    #[test]
    fn verifies_body_hash() {
        let keys = KeyRing::parse_keys("devkey: secret").unwrap();
        let body = GO_STYLE.as_bytes();
        let token = keys.sign_webhook(body).unwrap();
        assert_eq!(verify(&keys, Some(&token), body), Ok("devkey".into()));
        let bearer = format!("Bearer {token}");
        assert!(verify(&keys, Some(&bearer), body).is_ok());
        let tampered = GO_STYLE.replace("student-17", "student-18");
        assert_eq!(
            verify(&keys, Some(&token), tampered.as_bytes()),
            Err(WebhookError::BodyHashMismatch)
        );
        assert_eq!(
            verify(&keys, None, body),
            Err(WebhookError::Token(TokenError::Missing))
        );
    }
}
