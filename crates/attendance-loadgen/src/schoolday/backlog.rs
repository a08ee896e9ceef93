//! The webhook inbox through a school day.

use super::*;

/// The webhook inbox through the run: samples of the largest pending count
/// over the instances (on one PostgreSQL database they share the inbox).
///
/// The backlog is *growing* when, at the end of the hold (every class in
/// session, joins over), more than `--backlog-bound` webhooks still wait and
/// the count rose over the hold (least-squares slope > 0); it must also be
/// at most `--backlog-bound` once the run is over (after `--drain-wait`).
pub(super) struct Backlog {
    pub(super) samples: Vec<(f64, Option<f64>)>,
}

impl Backlog {
    pub(super) fn in_window(&self, from: f64, to: f64) -> Vec<(f64, f64)> {
        self.samples
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .filter_map(|(t, v)| v.map(|v| (*t, v)))
            .collect()
    }

    /// Pending webhooks per minute, least squares over `points`.
    pub(super) fn slope_per_min(points: &[(f64, f64)]) -> Option<f64> {
        if points.len() < 2 {
            return None;
        }
        let n = points.len() as f64;
        let mt = points.iter().map(|p| p.0).sum::<f64>() / n;
        let mv = points.iter().map(|p| p.1).sum::<f64>() / n;
        let var = points.iter().map(|p| (p.0 - mt).powi(2)).sum::<f64>();
        if var == 0.0 {
            return None;
        }
        let cov = points.iter().map(|p| (p.0 - mt) * (p.1 - mv)).sum::<f64>();
        Some(cov / var * 60.0)
    }
}

pub(super) async fn pending_max(client: &reqwest::Client, targets: &[Target]) -> Option<f64> {
    let mut max: Option<f64> = None;
    for target in targets {
        if let Some(v) = crate::ingest::pending(client, target).await {
            max = Some(max.map_or(v, |m: f64| m.max(v)));
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_slope() {
        let rising = [(0.0, 0.0), (30.0, 50.0), (60.0, 100.0)];
        assert_eq!(Backlog::slope_per_min(&rising), Some(100.0));
        assert_eq!(Backlog::slope_per_min(&[(1.0, 5.0)]), None);
        let flat = [(0.0, 3.0), (60.0, 3.0)];
        assert_eq!(Backlog::slope_per_min(&flat), Some(0.0));
    }
}
