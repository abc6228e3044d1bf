//! Server metrics in the Prometheus text exposition format: requests by route and status, a
//! request-latency histogram per route, and for the model worker: batch sizes, how long requests
//! waited in its queue, how long each batch took to compute, and images classified. The last
//! three split a slow request into waiting and computing. Every prediction answered is counted
//! by model, predicted class and verdict, and its out-of-distribution score goes into a
//! histogram per model, so a dashboard sees drift (a new category, a broken camera app) the day
//! it starts.

use crate::predict::{Thresholds, Verdict};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency buckets.
const LATENCY_BOUNDS: [f64; 12] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];
/// Upper bounds (images) of the batch-size buckets.
const BATCH_BOUNDS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Upper bounds of the out-of-distribution score buckets (the score is a squared distance per
/// feature: about 1 for a typical in-distribution photo).
const OOD_BOUNDS: [f64; 12] = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0, 20.0];

/// A cumulative histogram with fixed bucket bounds.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| value <= b) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    /// Adds `other`'s observations (same bounds).
    fn merge(&mut self, other: &Histogram) {
        self.counts.iter_mut().zip(&other.counts).for_each(|(a, b)| *a += b);
        self.sum += other.sum;
        self.count += other.count;
    }

    /// Appends the `_bucket`, `_sum` and `_count` lines of `name` with extra `labels`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Requests of one route: how many by status, and their latency.
#[derive(Debug)]
struct RouteCounts {
    statuses: BTreeMap<u16, u64>,
    latency: Histogram,
}

#[derive(Debug)]
struct Counts {
    routes: BTreeMap<String, RouteCounts>,
    batch_sizes: Histogram,
    queue_wait: Histogram,
    batch_compute: Histogram,
    images: u64,
    /// Predictions by (model, predicted class, verdict).
    verdicts: BTreeMap<(String, String, Verdict), u64>,
    /// Out-of-distribution scores by model.
    ood_scores: BTreeMap<String, Histogram>,
}

/// The server's metrics, safe to update from every request.
#[derive(Debug)]
pub struct Metrics {
    counts: Mutex<Counts>,
}

impl Default for Metrics {
    fn default() -> Self {
        let counts = Counts {
            routes: BTreeMap::new(),
            batch_sizes: Histogram::new(&BATCH_BOUNDS),
            queue_wait: Histogram::new(&LATENCY_BOUNDS),
            batch_compute: Histogram::new(&LATENCY_BOUNDS),
            images: 0,
            verdicts: BTreeMap::new(),
            ood_scores: BTreeMap::new(),
        };
        Metrics { counts: Mutex::new(counts) }
    }
}

impl Metrics {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a finished request.
    pub fn record_request(&self, route: &str, status: u16, latency: Duration) {
        let mut c = self.counts();
        if !c.routes.contains_key(route) {
            let counts = RouteCounts { statuses: BTreeMap::new(), latency: Histogram::new(&LATENCY_BOUNDS) };
            c.routes.insert(route.to_string(), counts);
        }
        let counts = c.routes.get_mut(route).expect("inserted above");
        *counts.statuses.entry(status).or_default() += 1;
        counts.latency.observe(latency.as_secs_f64());
    }

    /// Counts a batch the model ran: its images, how long each of its requests had waited in the
    /// queue when it started, and how long it took.
    pub fn record_batch(&self, images: usize, waits: impl Iterator<Item = Duration>, compute: Duration) {
        let mut c = self.counts();
        c.batch_sizes.observe(images as f64);
        waits.for_each(|wait| c.queue_wait.observe(wait.as_secs_f64()));
        c.batch_compute.observe(compute.as_secs_f64());
        c.images += images as u64;
    }

    /// Counts the predictions answered for `model`: each image's probabilities (rows of
    /// `class_names.len()`) and score, with the verdict `thresholds` give them.
    pub fn record_predictions(
        &self,
        model: &str,
        class_names: &[String],
        (probs, scores): (&[f32], Option<&[f32]>),
        thresholds: Thresholds,
    ) {
        // Counted per class and verdict first, so the shared map is touched once per class.
        let mut local = vec![[0u64; 3]; class_names.len()];
        let mut observed = Histogram::new(&OOD_BOUNDS);
        for (i, row) in probs.chunks_exact(class_names.len()).enumerate() {
            let best = (0..row.len()).fold(0, |b, k| if row[k] > row[b] { k } else { b });
            let score = scores.map(|s| s[i]);
            local[best][thresholds.verdict(row[best], score) as usize] += 1;
            if let Some(score) = score {
                observed.observe(score.into());
            }
        }
        let mut c = self.counts();
        for (class, counts) in class_names.iter().zip(&local) {
            for (verdict, &n) in [Verdict::Label, Verdict::Review, Verdict::Unknown].into_iter().zip(counts) {
                if n > 0 {
                    *c.verdicts.entry((model.to_string(), class.clone(), verdict)).or_default() += n;
                }
            }
        }
        if observed.count > 0 {
            c.ood_scores.entry(model.to_string()).or_insert_with(|| Histogram::new(&OOD_BOUNDS)).merge(&observed);
        }
    }

    /// Batches run and images classified so far.
    pub fn batch_totals(&self) -> (u64, u64) {
        let c = self.counts();
        (c.batch_sizes.count, c.images)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let c = self.counts();
        let mut out = String::new();
        out.push_str("# HELP wardrobe_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE wardrobe_requests_total counter\n");
        for (route, counts) in &c.routes {
            for (status, n) in &counts.statuses {
                let _ = writeln!(out, "wardrobe_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
            }
        }
        out.push_str("# HELP wardrobe_request_duration_seconds Time from request to response, by route.\n");
        out.push_str("# TYPE wardrobe_request_duration_seconds histogram\n");
        for (route, counts) in &c.routes {
            counts.latency.render(&mut out, "wardrobe_request_duration_seconds", &format!("route=\"{route}\""));
        }
        out.push_str("# HELP wardrobe_batch_size Images per model batch.\n");
        out.push_str("# TYPE wardrobe_batch_size histogram\n");
        c.batch_sizes.render(&mut out, "wardrobe_batch_size", "");
        out.push_str("# HELP wardrobe_queue_wait_seconds Time a request waited for the model, from queueing to its batch starting.\n");
        out.push_str("# TYPE wardrobe_queue_wait_seconds histogram\n");
        c.queue_wait.render(&mut out, "wardrobe_queue_wait_seconds", "");
        out.push_str("# HELP wardrobe_batch_compute_seconds Time the model took for one batch.\n");
        out.push_str("# TYPE wardrobe_batch_compute_seconds histogram\n");
        c.batch_compute.render(&mut out, "wardrobe_batch_compute_seconds", "");
        out.push_str("# HELP wardrobe_images_total Images classified.\n");
        out.push_str("# TYPE wardrobe_images_total counter\n");
        let _ = writeln!(out, "wardrobe_images_total {}", c.images);
        out.push_str("# HELP wardrobe_predictions_total Predictions answered, by model, predicted class and verdict (label, review, unknown).\n");
        out.push_str("# TYPE wardrobe_predictions_total counter\n");
        for ((model, class, verdict), n) in &c.verdicts {
            let (model, class) = (label_value(model), label_value(class));
            let verdict = verdict.as_str();
            let _ = writeln!(
                out,
                "wardrobe_predictions_total{{model=\"{model}\",class=\"{class}\",verdict=\"{verdict}\"}} {n}"
            );
        }
        out.push_str("# HELP wardrobe_ood_score Out-of-distribution scores of the photos answered, by model (higher = more unusual).\n");
        out.push_str("# TYPE wardrobe_ood_score histogram\n");
        for (model, scores) in &c.ood_scores {
            scores.render(&mut out, "wardrobe_ood_score", &format!("model=\"{}\"", label_value(model)));
        }
        out
    }
}

/// `value` escaped for a Prometheus label value (backslash, quote, newline).
fn label_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.record_request("/v2", 200, Duration::from_micros(300));
        m.record_request("/v2", 200, Duration::from_millis(3));
        m.record_request("/v2", 404, Duration::from_secs(9));
        let ms = Duration::from_millis;
        m.record_batch(3, [ms(1), ms(1), ms(30)].into_iter(), ms(4));
        m.record_batch(64, std::iter::once(ms(3)), ms(12));
        let text = m.render();
        assert!(text.contains("wardrobe_requests_total{route=\"/v2\",status=\"200\"} 2\n"));
        assert!(text.contains("wardrobe_requests_total{route=\"/v2\",status=\"404\"} 1\n"));
        assert!(text.contains("wardrobe_request_duration_seconds_bucket{route=\"/v2\",le=\"0.0005\"} 1\n"));
        assert!(text.contains("wardrobe_request_duration_seconds_bucket{route=\"/v2\",le=\"0.005\"} 2\n"));
        assert!(text.contains("wardrobe_request_duration_seconds_bucket{route=\"/v2\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("wardrobe_request_duration_seconds_count{route=\"/v2\"} 3\n"));
        assert!(text.contains("wardrobe_batch_size_bucket{le=\"4\"} 1\n"));
        assert!(text.contains("wardrobe_batch_size_bucket{le=\"64\"} 2\n"));
        assert!(text.contains("wardrobe_batch_size_sum 67\n"));
        assert!(text.contains("wardrobe_images_total 67\n"));
        assert!(text.contains("wardrobe_queue_wait_seconds_bucket{le=\"0.002\"} 2\n"));
        assert!(text.contains("wardrobe_queue_wait_seconds_bucket{le=\"0.005\"} 3\n"));
        assert!(text.contains("wardrobe_queue_wait_seconds_count 4\n"));
        assert!(text.contains("wardrobe_batch_compute_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("wardrobe_batch_compute_seconds_bucket{le=\"0.02\"} 2\n"));
        assert!(text.contains("wardrobe_batch_compute_seconds_sum 0.016\n"));
        assert_eq!(m.batch_totals(), (2, 67));
    }

    #[test]
    fn counts_verdicts_per_class_and_scores() {
        let m = Metrics::default();
        let names: Vec<String> = ["Bag", "T-shirt \"top\""].map(String::from).to_vec();
        let thresholds = Thresholds { review_below: 0.6, unknown_above: Some(2.0) };
        let probs = [0.9, 0.1, 0.45, 0.55, 0.2, 0.8, 0.95, 0.05];
        m.record_predictions("shop", &names, (&probs, Some(&[0.8, 1.1, 9.0, 1.9])), thresholds);
        m.record_predictions("shop", &names, (&probs[..2], None), thresholds);
        let text = m.render();
        for line in [
            "wardrobe_predictions_total{model=\"shop\",class=\"Bag\",verdict=\"label\"} 3\n",
            "wardrobe_predictions_total{model=\"shop\",class=\"T-shirt \\\"top\\\"\",verdict=\"review\"} 1\n",
            "wardrobe_predictions_total{model=\"shop\",class=\"T-shirt \\\"top\\\"\",verdict=\"unknown\"} 1\n",
            "wardrobe_ood_score_bucket{model=\"shop\",le=\"1\"} 1\n",
            "wardrobe_ood_score_bucket{model=\"shop\",le=\"2\"} 3\n",
            "wardrobe_ood_score_bucket{model=\"shop\",le=\"10\"} 4\n",
            "wardrobe_ood_score_count{model=\"shop\"} 4\n",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }
}
