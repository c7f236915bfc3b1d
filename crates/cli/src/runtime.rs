//! Shared plumbing of the long-running subcommands: logging, the
//! Kubernetes client, durations on the command line, and shutdown on
//! SIGTERM or Ctrl-C.

use std::time::Duration;

use anyhow::Context;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second init (tests, embedding) is harmless: keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A client from `KUBECONFIG`, `~/.kube/config` or the in-cluster
/// service account, as `kube` resolves them.
pub async fn client() -> anyhow::Result<kube::Client> {
    kube::Client::try_default().await.context(
        "no Kubernetes API configuration found: set KUBECONFIG to a kubeconfig file \
         (for a local try: `plumbline sim --api-only --kubeconfig /tmp/plumbline.kubeconfig`, \
         then KUBECONFIG=/tmp/plumbline.kubeconfig), or run inside a pod with a service account",
    )
}

/// Parses `90s`, `5m`, `1h30m` (the units Kubernetes manifests use).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration such as 30s, 5m or 1h30m ({e})"))?;
    Duration::try_from(signed).map_err(|_| format!("{text:?} must not be negative"))
}

/// Completes on SIGTERM (the kubelet stopping the pod) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_manifests_write_them() {
        let cases = [
            ("30s", Some(30)),
            ("5m", Some(300)),
            ("1h30m", Some(5400)),
            ("10m", Some(600)),
            ("soon", None),
            ("", None),
            ("-5m", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_duration(text).ok().map(|d| d.as_secs()),
                want,
                "{text:?}"
            );
        }
    }
}
