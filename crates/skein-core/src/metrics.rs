//! Prometheus metrics: one small process-wide registry of counters and histograms with fixed
//! label names, rendered in the text exposition format (version 0.0.4) at `/metrics`.
//!
//! Hand-written rather than `metrics` + `metrics-exporter-prometheus`: those bring a dozen
//! crates (quanta, sketches, metrics-util's maps) for what is here a map behind one mutex,
//! and Skein needs none of their extras (push gateways, summaries, recorders per thread).
//!
//! **Cardinality is bounded by the callers:** a label value is a route template, an HTTP
//! method, a status code, a configured model or channel id, or a word from a fixed list —
//! never a user id, a raw path or anything a client types freely. A family refuses new series
//! past [`MAX_SERIES`] (counted in `skein_metrics_dropped_series_total`) so a mistake cannot
//! grow memory without end.
//!
//! Values that are read rather than counted (pool sizes, breaker states, memory) are not kept
//! here: the `/metrics` handler reads them at scrape time and writes them with [`Text`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

/// Most series one family keeps; further label combinations are dropped (and counted).
pub const MAX_SERIES: usize = 2_000;

/// Buckets for durations in seconds: request latency, time to first token.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// A counter family: only goes up.
pub struct Counter {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
}

/// A gauge family: a value that is set (for values computed now and then, such as the last
/// ledger check's result; values read at scrape time are written by the handler instead).
pub struct Gauge {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
}

impl Gauge {
    /// A gauge named `name` with these label names.
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Gauge {
        Gauge { name, help, labels }
    }

    /// Sets the series with label `values` to `value`.
    pub fn set(&self, values: &[&str], value: f64) {
        if !value.is_finite() {
            return;
        }
        registry().record(
            self.name,
            self.help,
            self.labels,
            Kind::Gauge,
            values,
            value,
        );
    }
}

/// A histogram family with fixed buckets.
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
}

impl Counter {
    /// A counter named `name` (ending in `_total`) with these label names.
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Counter {
        Counter { name, help, labels }
    }

    /// Adds `by` to the series with label `values` (in the order of the label names).
    pub fn add(&self, values: &[&str], by: f64) {
        if by < 0.0 || !by.is_finite() {
            return;
        }
        registry().record(self.name, self.help, self.labels, Kind::Counter, values, by);
    }

    /// Adds one.
    pub fn inc(&self, values: &[&str]) {
        self.add(values, 1.0);
    }
}

impl Histogram {
    /// A histogram named `name` with these label names and bucket upper bounds.
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> Histogram {
        Histogram {
            name,
            help,
            labels,
            buckets,
        }
    }

    /// Records one observation of `value` in the series with label `values`.
    pub fn observe(&self, values: &[&str], value: f64) {
        if !value.is_finite() {
            return;
        }
        registry().record(
            self.name,
            self.help,
            self.labels,
            Kind::Histogram(self.buckets),
            values,
            value,
        );
    }
}

/// The process-wide registry every crate records into.
pub fn registry() -> &'static Registry {
    static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);
    &REGISTRY
}

/// Families by name, each with its series by label values.
#[derive(Default)]
pub struct Registry {
    families: Mutex<BTreeMap<&'static str, Family>>,
    dropped: AtomicU64,
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

struct Family {
    help: &'static str,
    labels: &'static [&'static str],
    kind: Kind,
    series: SeriesMap,
}

/// A family's series by their label values, found by borrowed values (`&[&str]`) without
/// building a key.
#[derive(Default)]
struct SeriesMap(BTreeMap<Vec<String>, Series>);

/// Label values, owned (the map's keys) or borrowed (a sample's), ordered as `Vec<String>`
/// orders its keys, so the map can be searched with borrowed values.
trait LabelValues {
    fn value(&self, i: usize) -> Option<&str>;
}

impl LabelValues for Vec<String> {
    fn value(&self, i: usize) -> Option<&str> {
        self.get(i).map(String::as_str)
    }
}

/// A sample's label values.
struct Borrowed<'a>(&'a [&'a str]);

impl LabelValues for Borrowed<'_> {
    fn value(&self, i: usize) -> Option<&str> {
        self.0.get(i).copied()
    }
}

impl<'a> std::borrow::Borrow<dyn LabelValues + 'a> for Vec<String> {
    fn borrow(&self) -> &(dyn LabelValues + 'a) {
        self
    }
}

impl Ord for dyn LabelValues + '_ {
    /// Lexicographic by value, a shorter list first when one is the other's start: the
    /// order of `Vec<String>`.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        for i in 0.. {
            match (self.value(i), other.value(i)) {
                (None, None) => return std::cmp::Ordering::Equal,
                (None, Some(_)) => return std::cmp::Ordering::Less,
                (Some(_), None) => return std::cmp::Ordering::Greater,
                (Some(a), Some(b)) => match a.cmp(b) {
                    std::cmp::Ordering::Equal => {}
                    unequal => return unequal,
                },
            }
        }
        std::cmp::Ordering::Equal
    }
}

impl PartialOrd for dyn LabelValues + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for dyn LabelValues + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for dyn LabelValues + '_ {}

impl SeriesMap {
    fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether a series has exactly these label values.
    fn contains(&self, values: &[&str]) -> bool {
        self.0.contains_key(&Borrowed(values) as &dyn LabelValues)
    }

    /// The series with exactly these label values.
    fn get_mut(&mut self, values: &[&str]) -> Option<&mut Series> {
        self.0.get_mut(&Borrowed(values) as &dyn LabelValues)
    }
}

enum Series {
    /// A counter's total or a gauge's value.
    Value(f64),
    Histogram {
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

impl Registry {
    fn record(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        kind: Kind,
        values: &[&str],
        value: f64,
    ) {
        if values.len() != labels.len() {
            // A caller's mistake; dropping the sample beats a panic on a request path.
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Ok(mut families) = self.families.lock() else {
            return;
        };
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            labels,
            kind,
            series: SeriesMap::default(),
        });
        // Looked up by the borrowed values: a sample of a series already seen allocates
        // nothing (several samples are recorded per relayed request).
        if !family.series.contains(values) {
            if family.series.len() >= MAX_SERIES {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let fresh = match kind {
                Kind::Histogram(b) => Series::Histogram {
                    counts: vec![0; b.len()],
                    sum: 0.0,
                    count: 0,
                },
                Kind::Counter | Kind::Gauge => Series::Value(0.0),
            };
            family
                .series
                .0
                .insert(values.iter().map(|v| (*v).to_string()).collect(), fresh);
        }
        let Some(series) = family.series.get_mut(values) else {
            return;
        };
        match (family.kind, series) {
            (Kind::Gauge, Series::Value(current)) => *current = value,
            (_, Series::Value(total)) => *total += value,
            (kind, Series::Histogram { counts, sum, count }) => {
                let bounds = match kind {
                    Kind::Histogram(bounds) => bounds,
                    Kind::Counter | Kind::Gauge => &[],
                };
                for (slot, bound) in counts.iter_mut().zip(bounds) {
                    if value <= *bound {
                        *slot += 1;
                    }
                }
                *sum += value;
                *count += 1;
            }
        }
    }

    /// Writes every family recorded so far.
    pub fn render(&self, out: &mut Text) {
        out.family(
            "skein_metrics_dropped_series_total",
            "Samples dropped because a family reached its series limit or had wrong labels.",
            "counter",
        );
        out.sample(
            "skein_metrics_dropped_series_total",
            &[],
            self.dropped.load(Ordering::Relaxed) as f64,
        );
        let Ok(families) = self.families.lock() else {
            return;
        };
        for (name, family) in families.iter() {
            let kind = match family.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram(_) => "histogram",
            };
            out.family(name, family.help, kind);
            for (values, series) in &family.series.0 {
                let labels: Vec<(&str, &str)> = family
                    .labels
                    .iter()
                    .copied()
                    .zip(values.iter().map(String::as_str))
                    .collect();
                match series {
                    Series::Value(value) => out.sample(name, &labels, *value),
                    Series::Histogram { counts, sum, count } => {
                        let bounds = match family.kind {
                            Kind::Histogram(bounds) => bounds,
                            Kind::Counter | Kind::Gauge => &[],
                        };
                        let bucket_name = format!("{name}_bucket");
                        for (bound, n) in bounds.iter().zip(counts) {
                            let le = format_value(*bound);
                            let mut with_le = labels.clone();
                            with_le.push(("le", &le));
                            out.sample(&bucket_name, &with_le, *n as f64);
                        }
                        let mut inf = labels.clone();
                        inf.push(("le", "+Inf"));
                        out.sample(&bucket_name, &inf, *count as f64);
                        out.sample(&format!("{name}_sum"), &labels, *sum);
                        out.sample(&format!("{name}_count"), &labels, *count as f64);
                    }
                }
            }
        }
    }
}

/// The exposition text being written.
#[derive(Default)]
pub struct Text {
    body: String,
}

impl Text {
    /// Starts a family: its `# HELP` and `# TYPE` lines (`kind`: counter, gauge, histogram).
    pub fn family(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.body, "# HELP {name} {help}");
        let _ = writeln!(self.body, "# TYPE {name} {kind}");
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.body.push_str(name);
        if !labels.is_empty() {
            self.body.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.body.push(',');
                }
                let _ = write!(self.body, "{label}=\"{}\"", escape_label(value));
            }
            self.body.push('}');
        }
        let _ = writeln!(self.body, " {}", format_value(value));
    }

    /// A one-sample gauge family.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, help, "gauge");
        self.sample(name, &[], value);
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.body
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{}", value as i64);
    }
    format!("{value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    static TEST_COUNTER: Counter = Counter::new(
        "skein_test_events_total",
        "Events in a unit test.",
        &["kind"],
    );
    static TEST_HISTOGRAM: Histogram = Histogram::new(
        "skein_test_duration_seconds",
        "Durations in a unit test.",
        &["route"],
        &[0.1, 1.0],
    );

    static TEST_GAUGE: Gauge = Gauge::new("skein_test_level", "A level in a unit test.", &[]);

    static TEST_PAIRS: Counter = Counter::new(
        "skein_test_pairs_total",
        "Pairs in a unit test.",
        &["model", "channel"],
    );

    #[test]
    fn every_series_is_found_again_by_its_borrowed_values() {
        // Values that are each other's prefixes, empty ones and ones that sort across the
        // pair: a lookup order that differed from the keys' own would miss a series and
        // start it again from zero.
        let values = ["", "a", "ab", "b", "a\u{0}", "\u{10ffff}", "模型"];
        let mut expected = Vec::new();
        for (i, model) in values.iter().enumerate() {
            for (j, channel) in values.iter().enumerate() {
                let times = 1 + (i * values.len() + j) % 5;
                for _ in 0..times {
                    TEST_PAIRS.inc(&[model, channel]);
                }
                expected.push((model.to_string(), channel.to_string(), times));
            }
        }
        let families = registry().families.lock().unwrap();
        let family = &families["skein_test_pairs_total"];
        assert_eq!(family.series.len(), values.len() * values.len());
        for (model, channel, times) in expected {
            match family.series.0.get(&vec![model.clone(), channel.clone()]) {
                Some(Series::Value(total)) => {
                    assert_eq!(*total, times as f64, "{model:?} {channel:?}")
                }
                _ => panic!("no series for {model:?} {channel:?}"),
            }
        }
    }

    #[test]
    fn renders_counters_and_cumulative_histograms() {
        TEST_GAUGE.set(&[], 7.0);
        TEST_GAUGE.set(&[], 2.5);
        TEST_COUNTER.inc(&["a\"b"]);
        TEST_COUNTER.add(&["a\"b"], 2.0);
        TEST_COUNTER.add(&["x"], -5.0);
        TEST_HISTOGRAM.observe(&["/r/{id}"], 0.0625);
        TEST_HISTOGRAM.observe(&["/r/{id}"], 0.5);
        TEST_HISTOGRAM.observe(&["/r/{id}"], 4.0);
        TEST_COUNTER.inc(&["too", "many"]);
        let mut text = Text::default();
        registry().render(&mut text);
        let text = text.finish();
        assert!(
            text.contains("# TYPE skein_test_events_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("skein_test_events_total{kind=\"a\\\"b\"} 3\n"),
            "{text}"
        );
        assert!(
            !text.contains("kind=\"x\""),
            "negative additions are refused: {text}"
        );
        assert!(
            text.contains("skein_test_duration_seconds_bucket{route=\"/r/{id}\",le=\"0.1\"} 1\n")
        );
        assert!(
            text.contains("skein_test_duration_seconds_bucket{route=\"/r/{id}\",le=\"1\"} 2\n")
        );
        assert!(
            text.contains("skein_test_duration_seconds_bucket{route=\"/r/{id}\",le=\"+Inf\"} 3\n")
        );
        assert!(text.contains("skein_test_duration_seconds_sum{route=\"/r/{id}\"} 4.5625\n"));
        assert!(text.contains("skein_test_duration_seconds_count{route=\"/r/{id}\"} 3\n"));
        assert!(
            text.contains("skein_metrics_dropped_series_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE skein_test_level gauge\nskein_test_level 2.5\n"),
            "{text}"
        );
    }
}
