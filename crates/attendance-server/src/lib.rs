//! The attendance server: LiveKit webhooks in, attendance reports and live
//! updates out. Facts are stored; every number is computed by
//! `attendance-rules` when it is read.
//!
//! Layers, each importing only the ones below it:
//!
//! | layer | job |
//! |---|---|
//! | [`config`], [`tasks`], [`connections`] | settings from flags; starting and stopping background tasks; accepting connections within limits |
//! | [`http`] | routes, authentication, errors, a file per resource, demo mode, pages |
//! | [`ingest`] | webhooks verified and stored (group commit), processed, swept |
//! | [`live`] | change feed, PostgreSQL bus, delivery to the hub's live sockets |
//! | [`outbound`] | signed webhooks out: the outbox delivered with retries, finalized sessions |
//! | [`report`] | facts → what people read (JSON views, CSV), via `attendance-rules` |
//! | [`store`] | SQLite and PostgreSQL behind one interface |
//! | [`domain`] | the facts as plain data, and the clock |
//!
//! [`livekit`] (tokens, webhook format) and [`metrics`] are leaves any layer
//! may use.

pub mod config;
pub mod connections;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod live;
pub mod livekit;
pub mod metrics;
pub mod outbound;
pub mod report;
pub mod store;
pub mod tasks;

pub use http::{App, Settings};
pub use tasks::serve;
