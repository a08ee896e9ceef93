//! The facts the service keeps, as plain data: no I/O, no clock of its own
//! beyond [`clock`]. Every layer above speaks in these types.

pub mod change;
pub mod classes;
pub mod clock;
pub mod facts;
pub mod lessons;
pub mod outbound;
pub mod recurrence;
pub mod webhooks;

pub use change::Changed;
pub use clock::{ms_to_time, now, now_ms};
pub use facts::{
    AuditRow, CycleFact, CycleRow, EventFacts, MediaFact, OverrideRow, Reconciled, RoomFacts,
    RosterEntry, SessionDetails, SessionRow, MEDIA_SOURCES,
};
pub use lessons::SessionKind;
pub use outbound::{Attempt, AttemptOutcome, Endpoint, OutboundEvent, OutboundMessage};
pub use webhooks::{InboxCounts, NewEvent, Shard, StoredBatch, StoredEvent};
