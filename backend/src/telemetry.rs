//! Structured logs (tracing) and Prometheus metrics.
//!
//! Metrics (all prefixed `evflex_`): `tick_duration_seconds`, `ticks_total`,
//! `tick_groups_total{outcome}`, `groups_solved_total`, `solver_seconds`,
//! `charging_requests_total{decision}`, `ocpi_ingest_total{module,result}`,
//! `meter_values_total`, `meter_values_errors_total`, `setpoints_total{result}`.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle (tests start many
/// servers in one process; they share it).
pub fn metrics_handle() -> PrometheusHandle {
    METRICS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed, which nothing else in evflex does.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Installs the tracing subscriber (`RUST_LOG`, default `info`); idempotent. With
/// `EVFLEX_LOG_SPANS=1` every span logs its time when it closes (`time.busy`, `time.idle`): where
/// a re-plan spends its time (snapshot, solve, plan, commit), for profiling.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::format::FmtSpan;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let spans = if std::env::var("EVFLEX_LOG_SPANS").is_ok_and(|v| v == "1") {
        FmtSpan::CLOSE
    } else {
        FmtSpan::NONE
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_span_events(spans)
        .try_init();
}
