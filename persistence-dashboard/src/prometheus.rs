//! The Prometheus text exposition format (version 0.0.4) of a reading:
//! counters and gauges as they are, histograms as summaries (quantiles
//! since start, from the log-scale buckets, plus `_sum` and `_count`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use metrics::Key;

use crate::recorder::{Reading, quantile};

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Metric names are made of `[a-zA-Z0-9_:]`; anything else becomes `_`.
fn metric_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn labels(key: &Key, extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = key
        .labels()
        .map(|l| format!("{}=\"{}\"", metric_name(l.key()), escape(l.value())))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// Render every metric of `reading`, grouped by name, names sorted.
pub(crate) fn render(reading: &Reading) -> String {
    let mut out = String::new();
    let mut counters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &reading.counters {
        counters
            .entry(metric_name(k.name()))
            .or_default()
            .push(format!("{}{} {v}", metric_name(k.name()), labels(k, None)));
    }
    let mut gauges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &reading.gauges {
        gauges
            .entry(metric_name(k.name()))
            .or_default()
            .push(format!(
                "{}{} {}",
                metric_name(k.name()),
                labels(k, None),
                number(*v)
            ));
    }
    let mut summaries: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, counts, sum) in &reading.histograms {
        let name = metric_name(k.name());
        let lines = summaries.entry(name.clone()).or_default();
        for (q, qs) in [(0.5, "0.5"), (0.95, "0.95"), (0.99, "0.99")] {
            if let Some(v) = quantile(counts, q) {
                lines.push(format!(
                    "{name}{} {}",
                    labels(k, Some(("quantile", qs))),
                    number(v)
                ));
            }
        }
        let count: u64 = counts.iter().sum();
        lines.push(format!("{name}_sum{} {}", labels(k, None), number(*sum)));
        lines.push(format!("{name}_count{} {count}", labels(k, None)));
    }
    for (kind, groups) in [
        ("counter", counters),
        ("gauge", gauges),
        ("summary", summaries),
    ] {
        for (name, mut lines) in groups {
            lines.sort();
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::Label;

    #[test]
    fn renders_each_kind_with_escaped_labels() {
        let key = |n: &'static str| {
            Key::from_parts(n, vec![Label::new("db", "main"), Label::new("op", "a\"b")])
        };
        let mut counts = vec![0; crate::recorder::BUCKETS];
        counts[100] = 3;
        let reading = Reading {
            counters: vec![(key("ops_total"), 7)],
            gauges: vec![(key("pool.size"), 2.5)],
            histograms: vec![(key("lat_seconds"), counts, 0.5)],
        };
        let text = render(&reading);
        assert!(
            text.contains("# TYPE ops_total counter\nops_total{db=\"main\",op=\"a\\\"b\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE pool_size gauge\npool_size{db=\"main\",op=\"a\\\"b\"} 2.5\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE lat_seconds summary\n"), "{text}");
        assert!(
            text.contains("lat_seconds_count{db=\"main\",op=\"a\\\"b\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds{db=\"main\",op=\"a\\\"b\",quantile=\"0.99\"} "),
            "{text}"
        );
    }
}
