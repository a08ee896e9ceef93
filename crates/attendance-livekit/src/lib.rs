//! Talking to LiveKit's server API, as the attendance service needs it.
//!
//! Webhooks tell the service who joined and left, but LiveKit delivers them
//! at most a few times and keeps its queue in memory: events get lost. This
//! crate lets the service *ask* LiveKit instead, and repair what it missed:
//!
//! - [`RoomServiceClient`] calls LiveKit's RoomService (Twirp over HTTP, JSON):
//!   `ListRooms` and `ListParticipants`, each with its own short-lived token
//!   minted as LiveKit's server SDKs mint them ([`token`]), reading both JSON
//!   spellings LiveKit answers in ([`model`]), and failing with an
//!   [`Error`] that says what went wrong without ever showing the token.
//! - [`reconcile::plan`] is the pure part: given the cycles the service holds
//!   open for a room and what LiveKit lists, it says which cycles to close (at
//!   the last instant LiveKit was seen to have the participant — never
//!   crediting unproven time), which to open, and which to mark as seen.
//! - With the `fake` cargo feature, `fake::FakeRoomService` is an in-memory
//!   RoomService on `127.0.0.1` for tests: it checks tokens and grants as
//!   LiveKit does, answers in either spelling, fails on demand and counts
//!   calls. Production builds leave it out.
//!
//! ```no_run
//! # async fn demo() -> Result<(), attendance_livekit::Error> {
//! use attendance_livekit::RoomServiceClient;
//! use std::time::Duration;
//!
//! let client = RoomServiceClient::new("wss://livekit.example.org", "APIkey", "secret")?
//!     .with_timeout(Duration::from_secs(5));
//! let rooms = client.list_rooms(&["math-101"]).await?;
//! for room in &rooms {
//!     for p in client.list_participants(&room.name).await? {
//!         println!("{} {} since {}", p.identity, p.state, p.joined_at_millis());
//!     }
//! }
//! # Ok(()) }
//! ```

mod client;
mod error;
pub mod model;
pub mod reconcile;
pub mod token;

#[cfg(feature = "fake")]
pub mod fake;

pub use client::{RoomServiceClient, DEFAULT_TIMEOUT};
pub use error::{Error, Method};
pub use model::{
    ParticipantInfo, ParticipantKind, ParticipantState, Room, TrackInfo, TrackSource, TrackType,
};
