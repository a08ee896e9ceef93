//! Counters for `GET /metrics` in Prometheus' text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Metrics {
    pub webhooks_received: AtomicU64,
    pub webhooks_accepted: AtomicU64,
    pub webhooks_duplicate: AtomicU64,
    webhooks_rejected: Mutex<BTreeMap<&'static str, u64>>,
    pub events_processed: AtomicU64,
    pub event_retries: AtomicU64,
    pub events_dead_lettered: AtomicU64,
    pub heartbeats: AtomicU64,
    pub websocket_connections: AtomicU64,
    pub broadcasts: AtomicU64,
    pub cycles_swept: AtomicU64,
    pub reconcile_checks: AtomicU64,
    pub reconcile_closed: AtomicU64,
    pub reconcile_opened: AtomicU64,
    reconcile_failures: Mutex<BTreeMap<&'static str, u64>>,
    /// Receipt → processed, summed in microseconds, and how many.
    pub processing_lag: Summary,
    /// Change → message rendered and handed to the hub.
    pub broadcast_latency: Summary,
    pub outbound: OutboundMetrics,
}

/// Outbound webhooks: attempts by result, messages delivered or given up,
/// and the time from an event to its delivery.
#[derive(Default)]
pub struct OutboundMetrics {
    attempts: Mutex<BTreeMap<&'static str, u64>>,
    delivered: AtomicU64,
    gave_up: AtomicU64,
    latency: Histogram,
}

impl OutboundMetrics {
    /// An attempt ended: `class` is `2xx` … `5xx`, `timeout`, `network` or `refused`.
    pub fn attempted(&self, class: &'static str) {
        *self
            .attempts
            .lock()
            .expect("metrics lock")
            .entry(class)
            .or_default() += 1;
    }

    /// A message was delivered, `latency` after its event.
    pub fn delivered(&self, latency: std::time::Duration) {
        Metrics::inc(&self.delivered);
        self.latency.observe(latency);
    }

    pub fn gave_up(&self) {
        Metrics::inc(&self.gave_up);
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP attendance_outbound_attempts_total Outbound webhook attempts, by result\n# TYPE attendance_outbound_attempts_total counter"
        );
        for (class, n) in self.attempts.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "attendance_outbound_attempts_total{{class=\"{class}\"}} {n}"
            );
        }
        for (name, help, value) in [
            (
                "attendance_outbound_delivered_total",
                "Outbound webhooks delivered (a 2xx answer)",
                &self.delivered,
            ),
            (
                "attendance_outbound_failed_total",
                "Outbound webhooks whose retries were exhausted",
                &self.gave_up,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        self.latency.render(
            out,
            "attendance_outbound_delivery_latency_seconds",
            "From an outbound event to its delivery, retries included",
        );
    }
}

/// A Prometheus histogram over the delays outbound delivery sees, from
/// sub-second to a day.
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum: Summary,
}

impl Default for Histogram {
    fn default() -> Self {
        const BOUNDS: &[f64] = &[
            0.1, 0.5, 1.0, 5.0, 30.0, 300.0, 1800.0, 7200.0, 36000.0, 86400.0,
        ];
        Histogram {
            bounds: BOUNDS,
            counts: BOUNDS.iter().map(|_| AtomicU64::new(0)).collect(),
            sum: Summary::default(),
        }
    }
}

impl Histogram {
    pub fn observe(&self, duration: std::time::Duration) {
        let seconds = duration.as_secs_f64();
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum.observe(duration);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let total = self.sum.count.load(Ordering::Relaxed);
        let sum = self.sum.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {total}\n{name}_sum {sum}\n{name}_count {total}"
        );
    }
}

/// A Prometheus summary without quantiles: sum and count.
#[derive(Default)]
pub struct Summary {
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Summary {
    pub fn observe(&self, duration: std::time::Duration) {
        self.sum_micros
            .fetch_add(duration.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} summary\n{name}_sum {}\n{name}_count {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            self.count.load(Ordering::Relaxed)
        );
    }
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A call to LiveKit's RoomService failed, for `reason`.
    pub fn reconcile_failed(&self, reason: &'static str) {
        *self
            .reconcile_failures
            .lock()
            .expect("metrics lock")
            .entry(reason)
            .or_default() += 1;
    }

    pub fn rejected(&self, reason: &'static str) {
        *self
            .webhooks_rejected
            .lock()
            .expect("metrics lock")
            .entry(reason)
            .or_default() += 1;
    }

    /// Renders every counter; `gauges` adds values read at scrape time.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        let counters = [
            (
                "attendance_webhooks_received_total",
                "Webhook requests received",
                &self.webhooks_received,
            ),
            (
                "attendance_webhooks_accepted_total",
                "Webhooks verified and stored",
                &self.webhooks_accepted,
            ),
            (
                "attendance_webhooks_duplicate_total",
                "Webhooks whose id was already stored",
                &self.webhooks_duplicate,
            ),
            (
                "attendance_events_processed_total",
                "Stored events applied to cycles",
                &self.events_processed,
            ),
            (
                "attendance_event_retries_total",
                "Failed processing attempts that will be retried",
                &self.event_retries,
            ),
            (
                "attendance_events_dead_lettered_total",
                "Events that exhausted their attempts",
                &self.events_dead_lettered,
            ),
            (
                "attendance_heartbeats_total",
                "Heartbeats recorded",
                &self.heartbeats,
            ),
            (
                "attendance_broadcasts_total",
                "attendance.updated messages published",
                &self.broadcasts,
            ),
            (
                "attendance_cycles_swept_total",
                "Cycles closed by the sweeper",
                &self.cycles_swept,
            ),
            (
                "attendance_reconcile_checks_total",
                "Rooms checked against LiveKit's RoomService",
                &self.reconcile_checks,
            ),
            (
                "attendance_reconcile_closed_total",
                "Cycles closed because LiveKit no longer listed them",
                &self.reconcile_closed,
            ),
            (
                "attendance_reconcile_opened_total",
                "Cycles opened because LiveKit listed a participant no webhook told of",
                &self.reconcile_opened,
            ),
            (
                "attendance_websocket_connections_total",
                "WebSocket connections accepted",
                &self.websocket_connections,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP attendance_webhooks_rejected_total Webhooks refused, by reason\n# TYPE attendance_webhooks_rejected_total counter"
        );
        for (reason, n) in self.webhooks_rejected.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "attendance_webhooks_rejected_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP attendance_reconcile_failures_total Failed calls to LiveKit's RoomService, by reason\n# TYPE attendance_reconcile_failures_total counter"
        );
        for (reason, n) in self.reconcile_failures.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "attendance_reconcile_failures_total{{reason=\"{reason}\"}} {n}"
            );
        }
        self.processing_lag.render(
            &mut out,
            "attendance_processing_lag_seconds",
            "From webhook receipt to its facts applied",
        );
        self.broadcast_latency.render(
            &mut out,
            "attendance_broadcast_latency_seconds",
            "From a change to its live message published",
        );
        self.outbound.render(&mut out);
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}
