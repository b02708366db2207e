//! Prometheus exposition of every persistence metric (feature `prometheus`),
//! on `metrics-exporter-prometheus`.
//!
//! Two ways in:
//!
//! * [`install`]: the app wants only Prometheus — installs the recorder
//!   globally, starts its upkeep task, returns the handle to render from
//!   your `/metrics` endpoint.
//! * [`recorder`]: a recorder and its handle **not installed**, to fan out
//!   with the app's own recorder and install the fanout yourself:
//!
//! ```ignore
//! // needs metrics-util with its `layers` feature in the app
//! # async fn demo() {
//! use metrics_util::layers::FanoutBuilder;
//! let (prom, handle) = persistence::prometheus::recorder();
//! let fanout = FanoutBuilder::default()
//!     .add_recorder(prom)
//!     // .add_recorder(your_recorder)
//!     .build();
//! metrics::set_global_recorder(fanout).expect("no recorder installed yet");
//! persistence::prometheus::spawn_upkeep(handle.clone(), std::time::Duration::from_secs(5));
//! let text = handle.render(); // Prometheus text format
//! # }
//! ```
//!
//! Histograms (`persistence_operation_duration_seconds`,
//! `persistence_pool_acquire_seconds`) are rendered as summaries with the
//! quantiles 0.5, 0.95 and 0.99 (p50/p95/p99).

use std::time::Duration;

use persistence_core::{Error, Result};

pub use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// The quantiles rendered for every histogram.
pub const QUANTILES: [f64; 3] = [0.5, 0.95, 0.99];

/// A builder with the persistence defaults (quantiles [`QUANTILES`]).
pub fn builder() -> PrometheusBuilder {
    let b = PrometheusBuilder::new();
    match b.set_quantiles(&QUANTILES) {
        Ok(b) => b,
        // The constant quantiles are valid; keep the exporter's defaults otherwise.
        Err(_) => PrometheusBuilder::new(),
    }
}

/// A recorder and its render handle, not installed globally. The caller
/// installs it (alone or in a fanout) and runs upkeep periodically
/// ([`spawn_upkeep`] or `handle.run_upkeep()`).
pub fn recorder() -> (PrometheusRecorder, PrometheusHandle) {
    let recorder = builder().build_recorder();
    let handle = recorder.handle();
    (recorder, handle)
}

/// Run `handle.run_upkeep()` every `every` on the current Tokio runtime
/// (drains histogram samples into the summaries; keeps memory bounded).
pub fn spawn_upkeep(handle: PrometheusHandle, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}

/// Install a Prometheus recorder as the process's global `metrics` recorder
/// and start its upkeep (every 5 s, when called inside a Tokio runtime).
/// Fails with a `Config` error if a global recorder is already installed.
pub fn install() -> Result<PrometheusHandle> {
    let (recorder, handle) = recorder();
    metrics::set_global_recorder(recorder).map_err(|e| {
        Error::config(format!(
            "cannot install the Prometheus recorder: {e}; use persistence::prometheus::recorder() and fan it out"
        ))
    })?;
    if tokio::runtime::Handle::try_current().is_ok() {
        spawn_upkeep(handle.clone(), Duration::from_secs(5));
    }
    Ok(handle)
}
