//! `/metrics`, `/healthz` and `/readyz` over plain HTTP/1.1.
//!
//! `/healthz` answers as long as the agent's loop is alive (the server runs
//! inside it and stops with it). `/readyz` turns 200 after the first
//! successful publish: before that the node's baseline may be missing or
//! stale, which is what a rollout should wait for.
//!
//! `/metrics` speaks OpenMetrics to scrapers that ask for it (Prometheus
//! does) and the Prometheus text format 0.0.4 to everyone else, as the Go
//! and Python clients do: `curl | promtool check metrics` and older
//! scrapers read counters wrongly from OpenMetrics, whose `# TYPE` line
//! names a counter without its `_total` suffix.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::SharedMetrics;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// State the endpoints read.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    pub ready: Arc<AtomicBool>,
    pub metrics: SharedMetrics,
}

/// Binds now (so a taken port fails start-up) and returns the serving loop.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until the future is dropped; connections still open then are
/// dropped with it.
pub(crate) async fn serve(listener: TcpListener, health: Health) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors or similar: wait a little, go on.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let health = health.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let health = health.clone();
                async move { Ok::<_, Infallible>(respond(&req, &health)) }
            });
            // A client that hangs up mid-request is its own problem.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(req: &Request<Incoming>, health: &Health) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let openmetrics = health.metrics.encode();
            let (body, content_type) = if accepts_openmetrics(req) {
                (openmetrics, OPENMETRICS)
            } else {
                (prometheus_text(&openmetrics), PROMETHEUS_TEXT)
            };
            let mut resp = Response::new(Full::new(Bytes::from(body)));
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(content_type),
            );
            resp
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if health.ready.load(Ordering::Relaxed) {
                text(StatusCode::OK, "ok\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: the node's baseline has not been published yet\n",
                )
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
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
    use crate::metrics::{KindLabels, SharedMetrics};

    #[test]
    fn text_format_names_counter_families_with_their_suffix() {
        let shared = SharedMetrics::new();
        shared
            .metrics
            .api_errors
            .get_or_create(&KindLabels { kind: "timeout" })
            .inc();
        shared.metrics.last_publish.set(1.5);
        let openmetrics = shared.encode();
        assert!(openmetrics.contains("# TYPE plumbline_agent_api_errors counter\n"));
        let text = prometheus_text(&openmetrics);
        for line in [
            "# HELP plumbline_agent_api_errors_total Failed Kubernetes API requests, by kind.",
            "# TYPE plumbline_agent_api_errors_total counter",
            "plumbline_agent_api_errors_total{kind=\"timeout\"} 1",
            "# TYPE plumbline_agent_last_publish_timestamp_seconds gauge",
            "plumbline_agent_last_publish_timestamp_seconds 1.5",
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
