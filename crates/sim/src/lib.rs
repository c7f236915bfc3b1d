//! `plumbline-sim`: a Kubernetes API server emulator that runs in-process.
//!
//! No real API server can be installed where Plumbline is built, yet the
//! agent, the controller, the benchmarks and `plumbline sim` all need one,
//! and they must be tested with the *real* clients (kube-rs, `kubectl`
//! 1.27–1.33, the Python `kubernetes` package). This crate serves the
//! subset of the API those clients use, over plain HTTP/1.1 on 127.0.0.1,
//! with the server's observable semantics: resourceVersions, optimistic
//! concurrency, status subresources, finalizers, garbage collection,
//! watches with history, bookmarks and streaming lists, server-side
//! apply, CRDs with schema validation, discovery, OpenAPI v3 and tables.
//!
//! ```text
//!   client (kube, kubectl, python)
//!        │ HTTP/1.1, JSON (YAML accepted in; protobuf refused, clients fall back)
//!        ▼
//!   server::handle ── /healthz /metrics /sim/faults (never faulted, never paused)
//!        │  pause gate, added latency, injected 500 / 429 / 409 (faults)
//!        ├── non-resource: /version /api /apis (classic + aggregated) /openapi/v3
//!        ▼
//!   resource route  /api(s)/<g>/<v>[/namespaces/<ns>]/<plural>[/<name>[/status]]
//!        │  verb = get | list | watch | create | update | patch | apply | delete
//!        ▼
//!   store (one mutex) ──► admission: defaults, prune, validate (validation::CompiledSchema),
//!        │                 patch & apply (patch::*), managedFields, generation, RV check
//!        │  commit: resourceVersion += 1, object stored as Arc<Value>
//!        ├──► per-resource event log (bounded; replays `watch?resourceVersion=N`, else 410)
//!        ├──► per-resource broadcast ──► each watch task filters, renders (JSON or Table),
//!        │                               streams one event per line (chunked)
//!        ├──► commit broadcast ──► Sim::subscribe() (invariant observers in tests)
//!        └──► cascades: namespace contents, CRD objects, ownerReference GC
//!        ▼
//!   response: object / List / Table / Status (+ Warning headers); metrics counted
//! ```
//!
//! Objects are stored generically as `serde_json::Value`; the resource
//! registry (built-in table plus served CRD versions) says what a path
//! means. Reads serialise `Arc`'d values outside the lock, and watchers
//! share events by `Arc`, so many watchers cost no copies of the store.
//!
//! Start one with [`Sim::start`], point a client at it with
//! [`Sim::client`] or [`Sim::write_kubeconfig`], seed or inspect objects
//! with [`Sim::store`], break it with [`Sim::faults`], and count what
//! clients did with [`Sim::metrics`]. See `docs/sim.md` for what is and is
//! not emulated.

mod convert;
mod discovery;
mod error;
mod faults;
pub mod fleet;
mod metrics;
mod openapi;
pub mod patch;
mod resources;
mod selector;
mod server;
mod store;
mod table;
mod util;
pub mod validation;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, watch};

pub use error::{ApiError, SimError};
pub use faults::{FaultHandle, Faults};
pub use metrics::{RequestCount, RequestCounters};
pub use store::{Committed, EventType};

use server::Shared;
use store::{DeleteOpts, PatchType, WriteOpts};

/// How to run the emulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free one. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Watch events kept per resource for replay; a watch from an older
    /// resourceVersion gets 410 Expired. Default 10,000.
    pub history: usize,
    /// How often watches that allow bookmarks get one. Default 5 s.
    pub bookmark_interval: Duration,
    /// Watch duration when the client gives no `timeoutSeconds`. Default 30 min.
    pub watch_timeout: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            history: 10_000,
            bookmark_interval: Duration::from_secs(5),
            watch_timeout: Duration::from_secs(1800),
        }
    }
}

/// A running emulator. Dropping it stops the server too; [`Sim::shutdown`]
/// also waits for the listener to close.
#[derive(Debug)]
pub struct Sim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("url", &self.url).finish()
    }
}

impl Sim {
    /// Binds and starts serving; `default`, `kube-system`, `kube-public`
    /// and `kube-node-lease` namespaces exist from the start.
    pub async fn start(config: SimConfig) -> Result<Sim, SimError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            store: store::Store::new(config.history),
            faults: Arc::new(faults::FaultState::new()),
            metrics: RequestCounters::default(),
            bookmark_interval: config.bookmark_interval,
            default_watch_timeout: config.watch_timeout,
            url: format!("http://{addr}"),
            shutdown: stop_rx,
        });
        let task = tokio::spawn(server::serve(listener, shared.clone()));
        Ok(Sim {
            shared,
            addr,
            stop,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client pointed at the emulator (namespace `default`).
    pub async fn client(&self) -> kube::Client {
        self.try_client()
            .expect("invariant: the emulator URL is a valid http URI")
    }

    /// Like [`Sim::client`], returning the error instead of panicking.
    pub fn try_client(&self) -> Result<kube::Client, SimError> {
        let uri: hyper::Uri = self
            .url()
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| SimError::Client(e.to_string()))?;
        let config = kube::Config::new(uri);
        kube::Client::try_from(config).map_err(|e| SimError::Client(e.to_string()))
    }

    /// A kubeconfig for `kubectl` and other clients (no credentials).
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig_for(&self.url())
    }

    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SimError> {
        std::fs::write(path, self.kubeconfig_yaml()).map_err(|source| SimError::WriteKubeconfig {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Fault injection switches (also at `GET/PUT /sim/faults`).
    pub fn faults(&self) -> FaultHandle {
        FaultHandle {
            state: self.shared.faults.clone(),
        }
    }

    /// Direct access to objects, without HTTP (writes still get
    /// resourceVersions and emit watch events).
    pub fn store(&self) -> StoreHandle {
        StoreHandle {
            shared: self.shared.clone(),
        }
    }

    /// Live request counters (the same numbers as `/metrics`).
    pub fn metrics(&self) -> RequestCounters {
        self.shared.metrics.clone()
    }

    /// Every committed write from now on, in commit order. A receiver that
    /// falls more than 8,192 commits behind gets `Lagged`.
    pub fn subscribe(&self) -> broadcast::Receiver<Committed> {
        self.shared.store.subscribe_commits()
    }

    /// Stops serving: open watches end and connections close.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

fn kubeconfig_for(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: plumbline-sim
  cluster:
    server: {url}
contexts:
- name: plumbline-sim
  context:
    cluster: plumbline-sim
    user: plumbline-sim
    namespace: default
current-context: plumbline-sim
preferences: {{}}
users:
- name: plumbline-sim
  user: {{}}
"
    )
}

/// Objects by `apiVersion`/`kind`, without HTTP. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    shared: Arc<Shared>,
}

fn unknown_kind(api_version: &str, kind: &str) -> SimError {
    SimError::Api(ApiError::new(
        404,
        "NotFound",
        format!("no resource served for {api_version} {kind}"),
    ))
}

impl StoreHandle {
    fn def(&self, api_version: &str, kind: &str) -> Result<Arc<resources::ResourceDef>, SimError> {
        self.shared
            .store
            .lock()
            .registry
            .find_kind(api_version, kind)
            .ok_or_else(|| unknown_kind(api_version, kind))
    }

    fn def_of(&self, obj: &Value) -> Result<Arc<resources::ResourceDef>, SimError> {
        let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        self.def(av, kind)
    }

    /// Creates an object as given, status included (a seeded Node can be
    /// Ready from the start). A CRD starts serving its resource at once.
    pub fn create(&self, obj: Value) -> Result<Value, SimError> {
        let def = self.def_of(&obj)?;
        let ns = util::meta_str(&obj, "namespace").map(String::from);
        let mut st = self.shared.store.lock();
        let r = st.create(&def, ns.as_deref(), obj, &WriteOpts::library("store"))?;
        Ok(convert::view(&def, &r.object).into_owned())
    }

    /// Replaces an object, status included; no resourceVersion check unless
    /// the object carries one.
    pub fn update(&self, mut obj: Value) -> Result<Value, SimError> {
        let def = self.def_of(&obj)?;
        let ns = util::meta_str(&obj, "namespace").map(String::from);
        let name = util::meta_str(&obj, "name").unwrap_or("").to_string();
        let mut st = self.shared.store.lock();
        let nsx = if def.namespaced {
            ns.as_deref().unwrap_or("default")
        } else {
            ""
        };
        let current = st
            .get(&def, nsx, &name)
            .ok_or_else(|| ApiError::not_found(&def.qualified(), &name))?;
        if util::meta_str(&obj, "resourceVersion").is_none_or(str::is_empty) {
            let rv = util::meta_str(&current, "resourceVersion")
                .unwrap_or("")
                .to_string();
            util::meta_mut(&mut obj).insert("resourceVersion".into(), Value::String(rv));
        }
        let status = obj.get("status").cloned();
        let opts = WriteOpts::library("store");
        let mut r = st.update(&def, ns.as_deref(), &name, obj.clone(), None, &opts)?;
        if def.status && status.is_some() && r.object.get("status") != status.as_ref() {
            let mut with_status = r.object.clone();
            with_status["status"] = status.unwrap_or(Value::Null);
            r = st.update(
                &def,
                ns.as_deref(),
                &name,
                with_status,
                Some("status"),
                &opts,
            )?;
        }
        Ok(convert::view(&def, &r.object).into_owned())
    }

    /// RFC 7386 merge patch of an object (or of its status with `status = true`).
    pub fn merge_patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
        status: bool,
    ) -> Result<Value, SimError> {
        let def = self.def(api_version, kind)?;
        let mut st = self.shared.store.lock();
        let sub = status.then_some("status");
        let r = st.patch(
            &def,
            namespace,
            name,
            PatchType::Merge,
            patch,
            sub,
            false,
            &WriteOpts::library("store"),
        )?;
        Ok(convert::view(&def, &r.object).into_owned())
    }

    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let def = self.def(api_version, kind).ok()?;
        let st = self.shared.store.lock();
        let ns = if def.namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        st.get(&def, ns, name)
            .map(|o| convert::view(&def, &o).into_owned())
    }

    /// All objects of a kind (in one namespace, or all with `None`).
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let Ok(def) = self.def(api_version, kind) else {
            return Vec::new();
        };
        let st = self.shared.store.lock();
        st.list(
            &def,
            namespace,
            &selector::LabelSelector::default(),
            &selector::FieldSelector::default(),
            None,
            None,
            None,
        )
        .map(|r| {
            r.items
                .iter()
                .map(|o| convert::view(&def, o).into_owned())
                .collect()
        })
        .unwrap_or_default()
    }

    /// Deletes an object (finalizers and garbage collection apply).
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, SimError> {
        let def = self.def(api_version, kind)?;
        let mut st = self.shared.store.lock();
        Ok(st.delete(&def, namespace, name, &DeleteOpts::default(), "store")?)
    }

    /// Objects of a kind, all namespaces.
    pub fn count(&self, api_version: &str, kind: &str) -> usize {
        let Ok(def) = self.def(api_version, kind) else {
            return 0;
        };
        let st = self.shared.store.lock();
        st.buckets
            .get(&def.store_key)
            .map(|b| b.objects.len())
            .unwrap_or(0)
    }

    /// The latest committed resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.lock().rv
    }

    /// Forgets a resource's watch history, so watches from any earlier
    /// resourceVersion get 410 Expired (like an etcd compaction).
    pub fn compact(&self, api_version: &str, kind: &str) -> Result<(), SimError> {
        let def = self.def(api_version, kind)?;
        self.shared.store.lock().expire_history(&def.store_key);
        Ok(())
    }
}

/// Serves an emulator until Ctrl-C: creates `crds`, writes a kubeconfig
/// to `kubeconfig`, prints the URL and the kubeconfig path. This is
/// `plumbline sim --api-only`.
pub async fn run_api_only(
    listen: SocketAddr,
    kubeconfig: &Path,
    crds: Vec<Value>,
) -> Result<(), SimError> {
    let sim = Sim::start(SimConfig {
        listen,
        ..SimConfig::default()
    })
    .await?;
    for crd in crds {
        sim.store().create(crd)?;
    }
    sim.write_kubeconfig(kubeconfig)?;
    println!("plumbline-sim serving at {}", sim.url());
    println!("kubeconfig written to {}", kubeconfig.display());
    println!("try: KUBECONFIG={} kubectl get nodes", kubeconfig.display());
    tokio::signal::ctrl_c().await.map_err(SimError::Signal)?;
    sim.shutdown().await;
    Ok(())
}
