//! What RoomService answers: `Room`, `ParticipantInfo`, `TrackInfo`.
//!
//! LiveKit writes these protobuf messages as JSON in two spellings, and both
//! are read here:
//! - a self-hosted server answers in **snake_case** with every field present
//!   (`"joined_at_ms": "1767000000123"`, `"kind": "STANDARD"`,
//!   `"disconnect_reason": "UNKNOWN_REASON"`), int64 as strings, enums as names;
//! - other deployments answer in **lowerCamelCase** protojson: zero values are
//!   omitted and int64 may be a string or a number.
//!
//! Missing fields and `null` read as the zero value, unknown fields are
//! ignored, enum values this crate does not know are kept by name
//! (`Other("…")`), and enums written as numbers are understood too.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A room as `ListRooms` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Room {
    /// `RM_…`: new for every instance of a room (names are reused).
    #[serde(deserialize_with = "nullable")]
    pub sid: String,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Unix seconds.
    #[serde(alias = "creationTime", deserialize_with = "int64")]
    pub creation_time: i64,
    /// Unix milliseconds (0 from servers that predate the field).
    #[serde(alias = "creationTimeMs", deserialize_with = "int64")]
    pub creation_time_ms: i64,
    #[serde(alias = "numParticipants", deserialize_with = "uint32")]
    pub num_participants: u32,
    #[serde(deserialize_with = "nullable")]
    pub metadata: String,
}

/// A participant as `ListParticipants` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ParticipantInfo {
    /// `PA_…`: new on every connection (a rejoin is a new sid).
    #[serde(deserialize_with = "nullable")]
    pub sid: String,
    /// The stable user id.
    #[serde(deserialize_with = "nullable")]
    pub identity: String,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    pub state: ParticipantState,
    /// Unix seconds.
    #[serde(alias = "joinedAt", deserialize_with = "int64")]
    pub joined_at: i64,
    /// Unix milliseconds (0 from servers that predate the field).
    #[serde(alias = "joinedAtMs", deserialize_with = "int64")]
    pub joined_at_ms: i64,
    /// `STANDARD` when absent.
    pub kind: ParticipantKind,
    #[serde(deserialize_with = "nullable")]
    pub metadata: String,
    #[serde(deserialize_with = "nullable")]
    pub attributes: BTreeMap<String, String>,
    #[serde(alias = "isPublisher", deserialize_with = "nullable")]
    pub is_publisher: bool,
    /// `None` when absent or `UNKNOWN_REASON`.
    #[serde(alias = "disconnectReason", deserialize_with = "disconnect_reason")]
    pub disconnect_reason: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub tracks: Vec<TrackInfo>,
}

impl ParticipantInfo {
    /// When the participant joined, in unix milliseconds: `joined_at_ms`, else
    /// `joined_at` × 1000 (servers that predate `joined_at_ms`), else 0.
    pub fn joined_at_millis(&self) -> i64 {
        if self.joined_at_ms > 0 {
            self.joined_at_ms
        } else {
            self.joined_at.saturating_mul(1000)
        }
    }

    /// `DISCONNECTED` participants are on their way out: not in the room.
    pub fn is_connected(&self) -> bool {
        self.state != ParticipantState::Disconnected
    }
}

/// One published track.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct TrackInfo {
    #[serde(deserialize_with = "nullable")]
    pub sid: String,
    /// `AUDIO` when absent.
    #[serde(rename = "type")]
    pub kind: TrackType,
    /// `UNKNOWN` when absent.
    pub source: TrackSource,
    #[serde(deserialize_with = "nullable")]
    pub muted: bool,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
}

/// `{"rooms": [...]}`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ListRoomsResponse {
    #[serde(deserialize_with = "nullable")]
    pub rooms: Vec<Room>,
}

/// `{"participants": [...]}`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ListParticipantsResponse {
    #[serde(deserialize_with = "nullable")]
    pub participants: Vec<ParticipantInfo>,
}

macro_rules! proto_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal $(/ $num:literal)? ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        ///
        /// Read from its protobuf name or number; a value this crate does not
        /// know (a newer LiveKit) is kept as `Other` with its name (or number).
        /// The first variant is the zero value, which protojson omits.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            #[default]
            $( $(#[$vmeta])* $variant, )+
            Other(String),
        }

        impl $name {
            /// The protobuf name (`Other` gives what was read).
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )+
                    Self::Other(other) => other,
                }
            }

            /// From a protobuf name.
            pub fn from_name(name: &str) -> Self {
                match name {
                    $( $text => Self::$variant, )+
                    other => Self::Other(other.to_string()),
                }
            }

            /// From a protobuf number.
            pub fn from_number(number: i64) -> Self {
                match number {
                    $( $( $num => Self::$variant, )? )+
                    other => Self::Other(other.to_string()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Ok(match enum_value(deserializer, stringify!($name))? {
                    EnumValue::Zero => Self::default(),
                    EnumValue::Name(name) => Self::from_name(&name),
                    EnumValue::Number(number) => Self::from_number(number),
                })
            }
        }
    };
}

proto_enum! {
    /// `ParticipantInfo.State`.
    ParticipantState {
        /// Signal connected, no offer yet.
        Joining = "JOINING" / 0,
        /// Offer received.
        Joined = "JOINED" / 1,
        /// Media connected (when `participant_joined` fires).
        Active = "ACTIVE" / 2,
        /// Gone, or on its way out.
        Disconnected = "DISCONNECTED" / 3,
    }
}

proto_enum! {
    /// `ParticipantInfo.Kind`: only `STANDARD` participants are people.
    ParticipantKind {
        Standard = "STANDARD" / 0,
        Ingress = "INGRESS" / 1,
        Egress = "EGRESS" / 2,
        Sip = "SIP" / 3,
        Agent = "AGENT" / 4,
        Connector = "CONNECTOR" / 7,
        Bridge = "BRIDGE",
    }
}

proto_enum! {
    /// `TrackType`.
    TrackType {
        Audio = "AUDIO" / 0,
        Video = "VIDEO" / 1,
        Data = "DATA" / 2,
    }
}

proto_enum! {
    /// `TrackSource`.
    TrackSource {
        Unknown = "UNKNOWN" / 0,
        Camera = "CAMERA" / 1,
        Microphone = "MICROPHONE" / 2,
        ScreenShare = "SCREEN_SHARE" / 3,
        ScreenShareAudio = "SCREEN_SHARE_AUDIO" / 4,
    }
}

/// `DisconnectReason` names by number, for servers that write enums as numbers.
const DISCONNECT_REASONS: [&str; 17] = [
    "UNKNOWN_REASON",
    "CLIENT_INITIATED",
    "DUPLICATE_IDENTITY",
    "SERVER_SHUTDOWN",
    "PARTICIPANT_REMOVED",
    "ROOM_DELETED",
    "STATE_MISMATCH",
    "JOIN_FAILURE",
    "MIGRATION",
    "SIGNAL_CLOSE",
    "ROOM_CLOSED",
    "USER_UNAVAILABLE",
    "USER_REJECTED",
    "SIP_TRUNK_FAILURE",
    "CONNECTION_TIMEOUT",
    "MEDIA_FAILURE",
    "AGENT_ERROR",
];

enum EnumValue {
    Zero,
    Name(String),
    Number(i64),
}

fn enum_value<'de, D: Deserializer<'de>>(
    deserializer: D,
    what: &'static str,
) -> Result<EnumValue, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(EnumValue::Zero),
        Some(Value::String(name)) if name.is_empty() => Ok(EnumValue::Zero),
        Some(Value::String(name)) => Ok(EnumValue::Name(name)),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(EnumValue::Number)
            .ok_or_else(|| de::Error::custom(format!("{what}: not an enum number: {n}"))),
        Some(other) => Err(de::Error::custom(format!(
            "{what}: expected a name or a number, found {}",
            kind_of(&other)
        ))),
    }
}

/// `DisconnectReason` by name or number; `None` for `UNKNOWN_REASON` (the
/// zero value protojson omits). Shared by RoomService answers and webhooks.
pub fn disconnect_reason<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let name = match enum_value(deserializer, "disconnect_reason")? {
        EnumValue::Zero => return Ok(None),
        EnumValue::Name(name) => name,
        EnumValue::Number(n) => usize::try_from(n)
            .ok()
            .and_then(|i| DISCONNECT_REASONS.get(i))
            .map_or_else(|| n.to_string(), |name| (*name).to_string()),
    };
    Ok((name != DISCONNECT_REASONS[0]).then_some(name))
}

/// `null` or absent reads as the zero value.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// protojson int64: a string (`"1767000000123"`) or a number; `null`/`""` is 0.
fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) if s.is_empty() => Ok(0),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| de::Error::custom(format!("not an int64: {s:?}"))),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| de::Error::custom(format!("not an int64: {n}"))),
        Some(other) => Err(de::Error::custom(format!(
            "expected an int64, found {}",
            kind_of(&other)
        ))),
    }
}

/// protojson uint32: a number (a string is accepted too).
fn uint32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let n = int64(deserializer)?;
    u32::try_from(n).map_err(|_| de::Error::custom(format!("not a uint32: {n}")))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_self_hosted_snake_case() {
        let body = r#"{"participants":[{"sid":"PA_x","identity":"alice","name":"Alice","state":"ACTIVE","joined_at":"1767000000","joined_at_ms":"1767000000123","kind":"STANDARD","attributes":{"role":"student"},"metadata":"","is_publisher":true,"disconnect_reason":"UNKNOWN_REASON","permission":null,"region":"","version":3,"kind_details":[],"tracks":[{"sid":"TR_y","type":"AUDIO","source":"MICROPHONE","muted":true,"name":"","width":0,"mime_type":"audio/opus"}]}]}"#;
        let list: ListParticipantsResponse = serde_json::from_str(body).unwrap();
        let p = &list.participants[0];
        assert_eq!(p.sid, "PA_x");
        assert_eq!(p.identity, "alice");
        assert_eq!(p.name, "Alice");
        assert_eq!(p.state, ParticipantState::Active);
        assert_eq!(p.joined_at, 1_767_000_000);
        assert_eq!(p.joined_at_ms, 1_767_000_000_123);
        assert_eq!(p.kind, ParticipantKind::Standard);
        assert_eq!(p.attributes["role"], "student");
        assert!(p.is_publisher);
        assert_eq!(p.disconnect_reason, None);
        assert_eq!(
            p.tracks,
            vec![TrackInfo {
                sid: "TR_y".into(),
                kind: TrackType::Audio,
                source: TrackSource::Microphone,
                muted: true,
                name: String::new(),
            }]
        );
    }

    #[test]
    fn reads_camel_case_with_zero_values_omitted() {
        let body = r#"{"participants":[{"sid":"PA_z","identity":"bo","state":"DISCONNECTED","joinedAt":1767000001,"joinedAtMs":"1767000001999","isPublisher":true,"disconnectReason":"CLIENT_INITIATED","tracks":[{"sid":"TR_v","type":"VIDEO","source":"CAMERA"}],"someFutureField":{"x":1}}]}"#;
        let list: ListParticipantsResponse = serde_json::from_str(body).unwrap();
        let p = &list.participants[0];
        assert_eq!(p.joined_at, 1_767_000_001);
        assert_eq!(p.joined_at_ms, 1_767_000_001_999);
        assert_eq!(
            p.kind,
            ParticipantKind::Standard,
            "missing kind is STANDARD"
        );
        assert_eq!(p.state, ParticipantState::Disconnected);
        assert!(!p.is_connected());
        assert!(p.is_publisher);
        assert_eq!(p.disconnect_reason.as_deref(), Some("CLIENT_INITIATED"));
        assert!(p.attributes.is_empty() && p.metadata.is_empty() && p.name.is_empty());
        assert_eq!(p.tracks[0].kind, TrackType::Video);
        assert!(!p.tracks[0].muted);

        // Everything omitted: the zero participant.
        let list: ListParticipantsResponse =
            serde_json::from_str(r#"{"participants":[{}]}"#).unwrap();
        assert_eq!(list.participants[0], ParticipantInfo::default());
        assert_eq!(list.participants[0].state, ParticipantState::Joining);
        // An empty response: protojson omits the empty list.
        let list: ListParticipantsResponse = serde_json::from_str("{}").unwrap();
        assert!(list.participants.is_empty());
    }

    #[test]
    fn reads_rooms_in_both_spellings() {
        let snake = r#"{"rooms":[{"sid":"RM_a","name":"math","empty_timeout":300,"creation_time":"1767000000","creation_time_ms":"1767000000500","metadata":"m","num_participants":2,"num_publishers":1,"active_recording":false,"enabled_codecs":[],"version":null}]}"#;
        let camel = r#"{"rooms":[{"sid":"RM_a","name":"math","emptyTimeout":300,"creationTime":1767000000,"creationTimeMs":"1767000000500","metadata":"m","numParticipants":2}]}"#;
        for body in [snake, camel] {
            let list: ListRoomsResponse = serde_json::from_str(body).unwrap();
            assert_eq!(
                list.rooms,
                vec![Room {
                    sid: "RM_a".into(),
                    name: "math".into(),
                    creation_time: 1_767_000_000,
                    creation_time_ms: 1_767_000_000_500,
                    num_participants: 2,
                    metadata: "m".into(),
                }]
            );
        }
    }

    #[test]
    fn enums_by_number_and_unknown_names() {
        let body = r#"{"participants":[
            {"sid":"a","kind":4,"state":2,"disconnectReason":14},
            {"sid":"b","kind":"BRIDGE"},
            {"sid":"c","kind":"HOLOGRAM","disconnect_reason":"AGENT_ERROR"},
            {"sid":"d","kind":99,"disconnect_reason":99}]}"#;
        let list: ListParticipantsResponse = serde_json::from_str(body).unwrap();
        let p = &list.participants;
        assert_eq!(p[0].kind, ParticipantKind::Agent);
        assert_eq!(p[0].state, ParticipantState::Active);
        assert_eq!(
            p[0].disconnect_reason.as_deref(),
            Some("CONNECTION_TIMEOUT")
        );
        assert_eq!(p[1].kind, ParticipantKind::Bridge);
        assert_eq!(p[2].kind, ParticipantKind::Other("HOLOGRAM".into()));
        assert_eq!(p[2].kind.as_str(), "HOLOGRAM");
        assert_eq!(p[2].disconnect_reason.as_deref(), Some("AGENT_ERROR"));
        assert_eq!(p[3].kind, ParticipantKind::Other("99".into()));
        assert_eq!(p[3].disconnect_reason.as_deref(), Some("99"));
    }

    #[test]
    fn joined_at_millis_falls_back_to_seconds() {
        let mut p = ParticipantInfo {
            joined_at: 1_767_000_000,
            ..Default::default()
        };
        assert_eq!(p.joined_at_millis(), 1_767_000_000_000);
        p.joined_at_ms = 1_767_000_000_123;
        assert_eq!(p.joined_at_millis(), 1_767_000_000_123);
    }

    #[test]
    fn wrong_types_are_errors_not_panics() {
        for body in [
            r#"{"participants":[{"joined_at_ms":"soon"}]}"#,
            r#"{"participants":[{"joined_at_ms":1.5}]}"#,
            r#"{"participants":[{"kind":{"a":1}}]}"#,
            r#"{"participants":[{"attributes":[1]}]}"#,
            r#"{"participants":{}}"#,
            r#"{"participants":[{"sid":"a"}"#,
        ] {
            assert!(
                serde_json::from_str::<ListParticipantsResponse>(body).is_err(),
                "{body}"
            );
        }
        for body in [
            r#"{"rooms":[{"num_participants":-1}]}"#,
            r#"{"rooms":[{"num_participants":"many"}]}"#,
            r#"{"rooms":"none"}"#,
        ] {
            assert!(
                serde_json::from_str::<ListRoomsResponse>(body).is_err(),
                "{body}"
            );
        }
    }
}
