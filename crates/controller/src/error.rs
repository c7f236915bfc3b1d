//! The controller's error type. Every variant names what was being done and
//! to which object, and [`ControllerError::kind`] gives the stable short
//! name used as the `kind` label of `plumbline_controller_errors_total`.

/// Errors of the controller runtime.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("serving metrics on {addr}: {source}")]
    Serve {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("patching node {node}: {source}")]
    NodePatch {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("patching status of node {node}: {source}")]
    NodeStatusPatch {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading node {node}: {source}")]
    NodeGet {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing verdict of baseline {name}: {source}")]
    VerdictPatch {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing status of policy {name}: {source}")]
    PolicyStatusPatch {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("lease {namespace}/{name}: {source}")]
    Lease {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("publishing event on {object}: {source}")]
    Event {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("encoding {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("loading compatibility data from {path}: {source}")]
    CompatData {
        path: String,
        #[source]
        source: plumbline_compat::CompatError,
    },
    #[error("the {resource} watch ended; the controller cannot keep its cache current")]
    WatchEnded { resource: &'static str },
    #[error("this replica lost leadership; the write was not sent")]
    NotLeader,
}

impl ControllerError {
    /// Stable short name for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            ControllerError::Serve { .. } => "serve",
            ControllerError::NodePatch { source, .. } => api_kind("node_patch", source),
            ControllerError::NodeStatusPatch { source, .. } => {
                api_kind("node_status_patch", source)
            }
            ControllerError::NodeGet { .. } => "node_get",
            ControllerError::VerdictPatch { source, .. } => api_kind("verdict_patch", source),
            ControllerError::PolicyStatusPatch { source, .. } => {
                api_kind("policy_status_patch", source)
            }
            ControllerError::Lease { .. } => "lease",
            ControllerError::Event { .. } => "event",
            ControllerError::Encode { .. } => "encode",
            ControllerError::CompatData { .. } => "compat_data",
            ControllerError::WatchEnded { .. } => "watch_ended",
            ControllerError::NotLeader => "not_leader",
        }
    }

    /// The write was refused because the object changed since it was read.
    pub fn is_conflict(&self) -> bool {
        self.api_code() == Some(409)
    }

    /// HTTP status of the API server's answer, when there was one.
    pub fn api_code(&self) -> Option<u16> {
        let source = match self {
            ControllerError::NodePatch { source, .. }
            | ControllerError::NodeStatusPatch { source, .. }
            | ControllerError::NodeGet { source, .. }
            | ControllerError::VerdictPatch { source, .. }
            | ControllerError::PolicyStatusPatch { source, .. }
            | ControllerError::Lease { source, .. }
            | ControllerError::Event { source, .. } => source,
            _ => return None,
        };
        status_code(source)
    }
}

/// HTTP status code of a kube error, when the server answered.
pub(crate) fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Conflicts, throttling and server errors are told apart in the metrics,
/// because they call for different alerts (a 409 storm is normal under
/// contention; a 500 storm is not).
fn api_kind(base: &'static str, e: &kube::Error) -> &'static str {
    match (base, status_code(e)) {
        (_, Some(409)) => "conflict",
        (_, Some(429)) => "throttled",
        (_, Some(404)) => "not_found",
        (_, Some(c)) if c >= 500 => "server_error",
        (b, _) => b,
    }
}
