//! `/metrics`, `/healthz` and `/readyz` on one small HTTP/1 server.
//!
//! `/healthz` answers as long as the process serves requests. `/readyz` is
//! 200 once the three caches have listed their resources: a standby replica
//! is ready too (it is warm and can take over at once), so readiness says
//! nothing about leadership — the `plumbline_controller_leader` gauge does.
//!
//! `/metrics` speaks OpenMetrics to scrapers that ask for it (Prometheus
//! does) and the Prometheus text format 0.0.4 to everyone else, as the Go
//! and Python clients do: `curl | promtool check metrics` and older
//! scrapers read counters wrongly from OpenMetrics, whose `# TYPE` line
//! names a counter without its `_total` suffix.

use crate::error::ControllerError;
use crate::metrics::Metrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;

/// Binds the listener; separate from [`serve`] so that a busy port is a
/// startup error rather than a background log line.
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, ControllerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ControllerError::Serve { addr, source })
}

/// Serves until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, metrics: Arc<Metrics>, ready: Arc<AtomicBool>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let metrics = metrics.clone();
                let ready = ready.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&req, &metrics, &ready)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(req: &Request<Incoming>, metrics: &Metrics, ready: &AtomicBool) -> Response<Full<Bytes>> {
    let (code, content_type, body) = match req.uri().path() {
        "/metrics" if accepts_openmetrics(req) => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            prometheus_text(&metrics.encode()),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" if ready.load(Ordering::Relaxed) => {
            (StatusCode::OK, "text/plain", "ok\n".to_string())
        }
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "caches not synced\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = code;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

fn accepts_openmetrics(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

/// The Prometheus text format 0.0.4 of what `prometheus_client` encodes as
/// OpenMetrics. For counters, gauges and histograms without exemplars the
/// two differ only in `# EOF`, `# UNIT`, the `unknown` type (`untyped`
/// there) and the counter family's name in `# HELP`/`# TYPE`, which
/// carries the `_total` suffix of its samples in the older format.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 8 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match descriptor {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                if prefix == "# TYPE " && tail == "unknown" {
                    out.push_str(" untyped");
                } else if !tail.is_empty() {
                    out.push(' ');
                    out.push_str(tail);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_names_counter_families_with_their_suffix() {
        let metrics = Metrics::new();
        metrics.reconciled("noop", 2);
        metrics.leader.set(1);
        let openmetrics = metrics.encode();
        assert!(openmetrics.contains("# TYPE plumbline_controller_reconciles counter\n"));
        let text = prometheus_text(&openmetrics);
        for line in [
            "# HELP plumbline_controller_reconciles_total Node reconciles by result.",
            "# TYPE plumbline_controller_reconciles_total counter",
            "plumbline_controller_reconciles_total{result=\"noop\"} 2",
            "# TYPE plumbline_controller_leader gauge",
            "plumbline_controller_leader 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn text_format_of_unknown_and_unit_lines() {
        let om = "# HELP x_bytes Size.\n# TYPE x_bytes unknown\n# UNIT x_bytes bytes\nx_bytes 3\n# EOF\n";
        assert_eq!(
            prometheus_text(om),
            "# HELP x_bytes Size.\n# TYPE x_bytes untyped\nx_bytes 3\n"
        );
    }
}
