//! Turns stored facts into what people read: the session, per-participant
//! attendance (always computed by `attendance-rules`), JSON views and CSV.
//! Pure: no I/O.

pub mod classify;
pub mod compute;
pub mod csv;
pub mod views;

pub use classify::{Classifier, Role};
pub use compute::{one_participant, session_report};
pub use csv::{csv, history_csv};
pub use views::{
    count_statuses, Clock, CycleView, OverrideView, ParticipantReport, SessionReport, SessionView,
};
