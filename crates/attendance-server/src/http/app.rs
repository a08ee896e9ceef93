//! What every route works with: the store, the keys, live delivery and
//! ingestion, and the HTTP settings.

use std::path::PathBuf;
use std::sync::Arc;

use crate::ingest::{Ingest, IngestSettings};
use crate::live::Live;
use crate::livekit::KeyRing;
use crate::metrics::Metrics;
use crate::outbound::{Outbound, OutboundSettings};
use crate::report::Classifier;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest request body accepted (webhooks, sessions), in bytes.
    pub max_body_bytes: u64,
    /// Serve `/demo/*`: fabricated, LiveKit-signed events for trying it out.
    pub demo: bool,
    /// Who counts as a student, a teacher or neither.
    pub classifier: Classifier,
    /// Pages from this folder instead of the ones built in (development).
    pub www_dir: Option<PathBuf>,
    pub ingest: IngestSettings,
    pub outbound: OutboundSettings,
    /// Who may frame the pages (`--frame-ancestors`); empty: nobody.
    pub frame_ancestors: Vec<String>,
    /// What each status is worth in a grade, unless a lesson says otherwise
    /// (`--grade-points`).
    pub grade_points: attendance_rules::GradePoints,
}

/// A handle on the shared state: cloned into every route and task, so a
/// clone is one reference count.
#[derive(Clone)]
pub struct App(Arc<AppState>);

pub struct AppState {
    pub store: Store,
    pub keys: KeyRing,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub live: Live,
    pub ingest: Ingest,
    pub outbound: Outbound,
}

impl std::ops::Deref for App {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.0
    }
}

impl App {
    pub fn new(store: Store, keys: KeyRing, settings: Settings) -> Self {
        let metrics = Arc::new(Metrics::default());
        let live = Live::new(store.clone(), metrics.clone(), settings.classifier.clone());
        let ingest = Ingest::new(
            store.clone(),
            keys.clone(),
            metrics.clone(),
            live.clone(),
            settings.ingest.clone(),
        );
        let outbound = Outbound::new(
            store.clone(),
            metrics.clone(),
            settings.classifier.clone(),
            settings.outbound.clone(),
        );
        App(Arc::new(AppState {
            store,
            keys,
            settings,
            metrics,
            live,
            ingest,
            outbound,
        }))
    }
}
