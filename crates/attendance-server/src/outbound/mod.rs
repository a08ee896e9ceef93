//! Results out to the school's systems: signed webhooks (Standard Webhooks).
//!
//! Facts and the messages they cause are written in one transaction (the
//! outbox, `store::outbox`); [`delivery`] sends them with exponential backoff
//! and jitter, one instance per message at a time; [`finalizer`] notices
//! sessions whose window ended (or whose final result changed) and puts
//! `session.finalized` in the outbox. Payloads are built in [`events`],
//! signed in [`signing`]; [`address`] keeps them away from private networks;
//! [`admin`] is what the API and the command line do with endpoints.

pub mod address;
pub mod admin;
pub mod delivery;
pub mod events;
pub mod finalizer;
pub mod signing;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::report::Classifier;
use crate::store::Store;

/// The retry delays after each failed attempt, as documented: more than 24
/// hours in all.
pub const DEFAULT_RETRY_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";

#[derive(Debug, Clone)]
pub struct OutboundSettings {
    /// Allow endpoints on loopback, link-local and private addresses.
    pub allow_private: bool,
    /// How long one attempt may take, answer included.
    pub timeout: Duration,
    /// Delay before each retry (each ± 20% jitter); when exhausted the
    /// message is `failed`.
    pub retry_schedule: Vec<Duration>,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub disable_after: Duration,
    /// How often ended sessions are looked for.
    pub finalize_interval: Duration,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        OutboundSettings {
            allow_private: false,
            timeout: Duration::from_secs(15),
            retry_schedule: parse_schedule(DEFAULT_RETRY_SCHEDULE).expect("valid default"),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            finalize_interval: Duration::from_secs(15),
        }
    }
}

/// `5s,5m,30m` → the delays; empty means "never retry".
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            humantime::parse_duration(part).map_err(|e| format!("retry delay `{part}`: {e}"))
        })
        .collect()
}

/// A handle on outbound delivery; a clone is one reference count.
#[derive(Clone)]
pub struct Outbound(Arc<OutboundState>);

pub struct OutboundState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub classifier: Classifier,
    pub settings: OutboundSettings,
    client: reqwest::Client,
    /// Wakes delivery when messages were put in the outbox.
    wake: Notify,
}

impl std::ops::Deref for Outbound {
    type Target = OutboundState;

    fn deref(&self) -> &OutboundState {
        &self.0
    }
}

impl Outbound {
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        classifier: Classifier,
        settings: OutboundSettings,
    ) -> Outbound {
        let mut client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            // Any answer but a 2xx is a failure; a redirect is not followed
            // (it could lead anywhere, private addresses included).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("attendance-server/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_private {
            client = client.dns_resolver(Arc::new(address::PublicOnly));
        }
        Outbound(Arc::new(OutboundState {
            store,
            metrics,
            classifier,
            settings,
            client: client.build().expect("the HTTP client builds"),
            wake: Notify::new(),
        }))
    }

    /// Messages were put in the outbox: deliver them now rather than at the
    /// next poll.
    pub fn kick(&self) {
        self.wake.notify_one();
    }

    /// What the API and the command line do with endpoints and messages.
    pub fn admin(&self) -> admin::Admin<'_> {
        admin::Admin::new(&self.store, self.settings.allow_private)
    }
}
