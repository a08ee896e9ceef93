//! LiveKit's token formats, built by hand (HS256 with hmac + sha2): webhook
//! tokens with the body's `sha256` claim, and access tokens with a `video`
//! grant, exactly as livekit-server and its server SDKs mint them.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Student,
    Teacher,
    Admin,
}

#[derive(Clone)]
pub struct Signer {
    key: String,
    mac: Hmac<Sha256>,
    /// The base64url JSON header, the same for every token.
    header: String,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Signer {
    pub fn new(key: &str, secret: &str) -> Signer {
        Signer {
            key: key.to_string(),
            mac: Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length"),
            header: b64url(br#"{"alg":"HS256","typ":"JWT"}"#),
        }
    }

    pub fn jwt(&self, claims: &Value) -> String {
        let input = format!("{}.{}", self.header, b64url(claims.to_string().as_bytes()));
        let mut mac = self.mac.clone();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64url(&mac.finalize().into_bytes()))
    }

    /// The `Authorization` value livekit-server sends with a webhook: no
    /// `Bearer `, `sha256` = standard padded base64 of the raw body's SHA-256.
    pub fn webhook_token(&self, body: &[u8]) -> String {
        let now = now_s();
        let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
        self.jwt(&json!({"iss": self.key, "nbf": now, "exp": now + 300, "sha256": sha}))
    }

    /// An access token as LiveKit's server SDKs mint it (valid 6 h).
    pub fn access_token(&self, identity: &str, room: &str, role: Role) -> String {
        let video = match role {
            Role::Student => json!({"room": room, "roomJoin": true, "canPublish": true}),
            Role::Teacher => json!({"room": room, "roomJoin": true, "roomAdmin": true}),
            Role::Admin => json!({"roomCreate": true, "roomList": true}),
        };
        let now = now_s();
        self.jwt(&json!({
            "iss": self.key, "sub": identity, "name": identity,
            "nbf": now, "exp": now + 6 * 3600, "video": video,
        }))
    }
}

/// A participant event as livekit-server's Go protojson encoder writes it:
/// `", "` spacing, int64 as strings, zero values omitted, plus a field this
/// service does not know (LiveKit adds fields over time).
/// Who an event is about.
pub struct Participant<'a> {
    pub room: &'a str,
    pub room_sid: &'a str,
    pub sid: &'a str,
    pub identity: &'a str,
    pub joined_at_ms: i64,
}

pub fn participant_event(kind: &str, id: &str, created_at: i64, p: &Participant) -> String {
    let Participant {
        room,
        room_sid,
        sid: participant_sid,
        identity,
        joined_at_ms,
    } = *p;
    let value = json!({
        "event": kind,
        "room": {"sid": room_sid, "name": room, "emptyTimeout": 300, "departureTimeout": 20,
                 "creationTime": (created_at - 600).to_string(),
                 "creationTimeMs": ((created_at - 600) * 1000).to_string()},
        "participant": {"sid": participant_sid, "identity": identity, "name": identity,
                        "state": if kind == "participant_joined" { "ACTIVE" } else { "DISCONNECTED" },
                        "joinedAt": (joined_at_ms / 1000).to_string(),
                        "joinedAtMs": joined_at_ms.to_string(), "version": 2,
                        "permission": {"canSubscribe": true, "canPublish": true, "canPublishData": true},
                        "isPublisher": true, "futureField": {"x": 1}},
        "id": id,
        "createdAt": created_at.to_string(),
    });
    value.to_string().replace(",\"", ", \"")
}

/// 12 characters from LiveKit's id alphabet, unique per `n` within a run
/// (`prefix` keeps runs apart). LiveKit's ids are random, so consecutive
/// `n` are spread over the id space, as a database index sees real ones:
/// `n` times a step coprime to the space's size (62^k: odd, not a multiple
/// of 31), modulo that size, is one-to-one; a step near the golden ratio of
/// the space puts consecutive ones far apart.
pub fn livekit_id(kind: &str, prefix: &str, n: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let space = 62u128.pow(12u32.saturating_sub(prefix.len() as u32).min(10));
    let mut step = (space as f64 * 0.618_033_988_75) as u128 | 1;
    while step % 31 == 0 {
        step += 2;
    }
    let mut s = String::with_capacity(16);
    s.push_str(kind);
    s.push('_');
    s.push_str(prefix);
    let mut x = (u128::from(n) % space * step % space) as u64;
    let mut digits = Vec::new();
    loop {
        digits.push(ALPHABET[(x % 62) as usize] as char);
        x /= 62;
        if x == 0 {
            break;
        }
    }
    while digits.len() + prefix.len() < 12 {
        digits.push('A');
    }
    s.extend(digits.iter().rev());
    s
}

/// A short random-ish run prefix from the clock, so reruns on the same
/// database never collide on event ids.
pub fn run_prefix() -> String {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64;
    // Microseconds mixed with the pid: distinct for runs in a row and in parallel.
    let seed = (nanos / 1000) ^ (u64::from(std::process::id()) << 40);
    let id = livekit_id("", "", seed % 62u64.pow(5) + 62u64.pow(5));
    id[id.len() - 5..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_livekit_shaped() {
        let a = livekit_id("EV", "abcde", 0);
        let b = livekit_id("EV", "abcde", 1);
        assert_ne!(a, b);
        assert!(a.starts_with("EV_abcde"));
        assert_eq!(a.len(), 15);
        // Unique, and spread: consecutive ones rarely share a first character.
        let ids: Vec<String> = (0..10_000).map(|n| livekit_id("EV", "abcde", n)).collect();
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        let same_start = ids
            .windows(2)
            .filter(|w| w[0].as_bytes()[8] == w[1].as_bytes()[8])
            .count();
        assert!(
            same_start < 1_000,
            "{same_start} of 10,000 in a row share a start"
        );
        assert_eq!(run_prefix().len(), 5);
        let a = run_prefix();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_ne!(a, run_prefix());
    }

    #[test]
    fn go_style_spacing_and_int64_strings() {
        let body = participant_event(
            "participant_joined",
            "EV_x",
            1_700_000_000,
            &Participant {
                room: "r",
                room_sid: "RM_r",
                sid: "PA_p",
                identity: "s1",
                joined_at_ms: 1_700_000_000_123,
            },
        );
        assert!(body.contains(", \"participant\""));
        assert!(body.contains("\"joinedAtMs\":\"1700000000123\""));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["createdAt"], "1700000000");
    }

    #[test]
    fn webhook_token_verifies() {
        let signer = Signer::new("k", "a-secret-that-is-long-enough-000000");
        let token = signer.webhook_token(b"{}");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let mut mac =
            Hmac::<Sha256>::new_from_slice(b"a-secret-that-is-long-enough-000000").unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        assert_eq!(b64url(&mac.finalize().into_bytes()), parts[2]);
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            claims["sha256"],
            "RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o="
        );
    }
}
