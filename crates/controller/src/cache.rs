//! Watch caches: one reflector store per resource, fed by a watcher whose
//! objects are stripped of what the controller never reads, plus a small
//! read-your-writes overlay.
//!
//! The overlay matters for safety, not speed. The budget is computed from
//! these caches; if a node the controller just tainted still looked
//! untainted (its watch event not yet arrived, or a relist that started
//! before the write), the next batch would see a free slot that is not free.
//! So every object a write returns is kept in the overlay until the watch
//! shows a version at least as new, and reads see the newer of the two.

use crate::metrics::{KindLabel, Metrics};
use crate::queue::Queue;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt};
use plumbline_api::keys;
use plumbline_api::{GpuFleetPolicy, NodeGpuBaseline};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Numeric `resourceVersion`, when the server uses numbers (etcd and the
/// emulator do). Opaque versions fall back to "the overlay lasts until the
/// next watch event for the object".
fn rv_number<K: Resource>(obj: &K) -> Option<u64> {
    obj.meta().resource_version.as_deref()?.parse().ok()
}

/// One resource's cache.
pub(crate) struct Cache<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    writer: Mutex<Writer<K>>,
    store: Store<K>,
    overlay: Mutex<HashMap<String, Arc<K>>>,
    synced: AtomicBool,
}

impl<K> Cache<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
{
    pub fn new() -> Arc<Self> {
        let writer = Writer::<K>::default();
        let store = writer.as_reader();
        Arc::new(Cache {
            writer: Mutex::new(writer),
            store,
            overlay: Mutex::new(HashMap::new()),
            synced: AtomicBool::new(false),
        })
    }

    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    fn overlay(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<K>>> {
        self.overlay
            .lock()
            .expect("overlay mutex is never held across a panic")
    }

    /// The newest version of `name` this replica knows of.
    pub fn get(&self, name: &str) -> Option<Arc<K>> {
        let stored = self.store.get(&ObjectRef::new(name));
        let overlay = self.overlay().get(name).cloned();
        newer(stored, overlay)
    }

    /// Every object, with the overlay applied.
    pub fn all(&self) -> Vec<Arc<K>> {
        let overlay = self.overlay().clone();
        let mut out = self.store.state();
        if overlay.is_empty() {
            return out;
        }
        for obj in &mut out {
            if let Some(o) = overlay.get(&obj.name_any())
                && rv_number(o.as_ref()) > rv_number(obj.as_ref())
            {
                *obj = o.clone();
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Remembers what a write returned (after stripping).
    pub fn write_through(&self, obj: K) {
        let name = obj.name_any();
        let current = self.get(&name);
        let obj = Arc::new(obj);
        if let Some(cur) = &current
            && rv_number(cur.as_ref()) >= rv_number(obj.as_ref())
            && rv_number(obj.as_ref()).is_some()
        {
            return;
        }
        self.overlay().insert(name, obj);
    }

    /// Applies a watch event; returns the previous object for `Apply` and
    /// `Delete`, so the caller can tell whether anything it reads changed.
    fn apply(&self, event: &Event<K>) -> Option<Arc<K>> {
        let previous = match event {
            Event::Apply(obj) | Event::Delete(obj) => {
                let name = obj.name_any();
                let prev = self.get(&name);
                let mut overlay = self.overlay();
                let drop_overlay = match (overlay.get(&name), event) {
                    (Some(_), Event::Delete(_)) => true,
                    (Some(o), _) => match (rv_number(o.as_ref()), rv_number(obj)) {
                        (Some(written), Some(seen)) => seen >= written,
                        _ => true,
                    },
                    (None, _) => false,
                };
                if drop_overlay {
                    overlay.remove(&name);
                }
                prev
            }
            _ => None,
        };
        self.writer
            .lock()
            .expect("writer mutex is never held across a panic")
            .apply_watcher_event(event);
        if matches!(event, Event::InitDone) {
            self.synced.store(true, Ordering::Release);
        }
        previous
    }
}

fn newer<K: Resource>(a: Option<Arc<K>>, b: Option<Arc<K>>) -> Option<Arc<K>> {
    match (a, b) {
        (Some(a), Some(b)) => {
            if rv_number(b.as_ref()) > rv_number(a.as_ref()) {
                Some(b)
            } else {
                Some(a)
            }
        }
        (a, None) => a,
        (None, b) => b,
    }
}

/// Keeps from a Node only what the controller reads: labels, Plumbline's
/// annotations, taints, `unschedulable` and Plumbline's condition. A node
/// object is mostly images, addresses and kubelet conditions; at 10,000
/// nodes this is most of the controller's memory.
pub(crate) fn strip_node(node: &mut Node) {
    node.metadata.managed_fields = None;
    if let Some(a) = node.metadata.annotations.as_mut() {
        a.retain(|k, _| k.starts_with(keys::PREFIX));
    }
    if let Some(spec) = node.spec.as_mut() {
        spec.config_source = None;
        spec.external_id = None;
        spec.pod_cidr = None;
        spec.pod_cidrs = None;
        spec.provider_id = None;
    }
    if let Some(status) = node.status.take() {
        let conditions: Vec<_> = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.type_ == keys::conditions::GPU_STACK_COMPLIANT)
            .collect();
        if !conditions.is_empty() {
            node.status = Some(k8s_openapi::api::core::v1::NodeStatus {
                conditions: Some(conditions),
                ..Default::default()
            });
        }
    }
}

/// Baselines keep their status (the evaluator reads all of it); only
/// bookkeeping goes.
pub(crate) fn strip_baseline(b: &mut NodeGpuBaseline) {
    b.metadata.managed_fields = None;
    if let Some(a) = b.metadata.annotations.as_mut() {
        a.retain(|k, _| k.starts_with(keys::PREFIX));
    }
}

pub(crate) fn strip_policy(p: &mut GpuFleetPolicy) {
    p.metadata.managed_fields = None;
    if let Some(a) = p.metadata.annotations.as_mut() {
        a.retain(|k, _| k.starts_with(keys::PREFIX));
    }
}

/// How policies are trimmed on their way into the cache. With the
/// controller's dry run, every policy enters as `DryRun`, so no code path
/// downstream can act on a Node whatever the stored spec says.
pub(crate) fn policy_strip(dry_run: bool) -> fn(&mut GpuFleetPolicy) {
    if dry_run {
        strip_policy_forcing_dry_run
    } else {
        strip_policy
    }
}

fn strip_policy_forcing_dry_run(p: &mut GpuFleetPolicy) {
    strip_policy(p);
    p.spec.mode = plumbline_api::PolicyMode::DryRun;
}

/// The node a baseline describes.
pub(crate) fn baseline_node(b: &NodeGpuBaseline) -> String {
    if b.spec.node_name.is_empty() {
        b.name_any()
    } else {
        b.spec.node_name.clone()
    }
}

/// What a watch event means for the work queue.
pub(crate) enum Touched {
    /// These nodes need a reconcile.
    Nodes(Vec<String>),
    /// Every node needs a reconcile (a policy changed, or a relist).
    All,
    Nothing,
}

/// Runs a watcher into `cache` until the task is dropped; never gives up
/// (the watcher's backoff retries dropped watches, 410s and relists).
pub(crate) async fn run_watch<K>(
    api: Api<K>,
    cache: Arc<Cache<K>>,
    strip: fn(&mut K),
    touched: fn(Option<&K>, &Event<K>) -> Touched,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    resource: &'static str,
) where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let config = watcher::Config::default().any_semantic();
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let gauge = metrics
        .cached
        .get_or_create(&KindLabel { kind: resource })
        .clone();
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(ev) => ev.modify(strip),
            Err(e) => {
                metrics.error("watch");
                tracing::debug!(resource, error = %e, "watch interrupted; resuming");
                continue;
            }
        };
        let previous = cache.apply(&event);
        match touched(previous.as_deref(), &event) {
            Touched::Nodes(names) => queue.add_all(names.iter().map(String::as_str)),
            Touched::All => queue.request_full(),
            Touched::Nothing => {}
        }
        if matches!(event, Event::InitDone | Event::Apply(_) | Event::Delete(_)) {
            gauge.set(i64::try_from(cache.len()).unwrap_or(i64::MAX));
        }
    }
    tracing::error!(resource, "watch stream ended");
}

/// Nodes: reconcile when anything the controller reads changed.
pub(crate) fn node_touched(prev: Option<&Node>, ev: &Event<Node>) -> Touched {
    match ev {
        Event::Apply(n) => {
            if prev.is_some_and(|p| same_ignoring_version(p, n)) {
                Touched::Nothing
            } else {
                Touched::Nodes(vec![n.name_any()])
            }
        }
        Event::Delete(n) => Touched::Nodes(vec![n.name_any()]),
        Event::InitDone => Touched::All,
        _ => Touched::Nothing,
    }
}

fn same_ignoring_version<K: Resource + Clone + serde::Serialize>(a: &K, b: &K) -> bool {
    let strip = |k: &K| {
        let mut k = k.clone();
        k.meta_mut().resource_version = None;
        serde_json::to_value(&k).ok()
    };
    strip(a) == strip(b)
}

/// Baselines: reconcile the node unless only our verdict changed.
pub(crate) fn baseline_touched(
    prev: Option<&NodeGpuBaseline>,
    ev: &Event<NodeGpuBaseline>,
) -> Touched {
    match ev {
        Event::Apply(b) => {
            let without_verdict = |b: &NodeGpuBaseline| {
                let mut b = b.clone();
                if let Some(s) = b.status.as_mut() {
                    s.verdict = None;
                }
                b
            };
            if prev.is_some_and(|p| same_ignoring_version(&without_verdict(p), &without_verdict(b)))
            {
                Touched::Nothing
            } else {
                Touched::Nodes(vec![baseline_node(b)])
            }
        }
        Event::Delete(b) => Touched::Nodes(vec![baseline_node(b)]),
        Event::InitDone => Touched::All,
        _ => Touched::Nothing,
    }
}

/// Policies: any change can move any node.
pub(crate) fn policy_touched(prev: Option<&GpuFleetPolicy>, ev: &Event<GpuFleetPolicy>) -> Touched {
    match ev {
        Event::Apply(p) => {
            // Our own status writes come back as events; only spec and
            // labels can move nodes.
            if prev.is_some_and(|old| {
                old.spec == p.spec
                    && old.metadata.labels == p.metadata.labels
                    && old.metadata.generation == p.metadata.generation
            }) {
                Touched::Nothing
            } else {
                Touched::All
            }
        }
        Event::Delete(_) | Event::InitDone => Touched::All,
        _ => Touched::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_stripped_node_keeps_only_what_the_controller_reads() {
        let mut node: Node = serde_json::from_value(json!({
            "metadata": {
                "name": "n1",
                "labels": {"team": "ml", "plumbline.dev/compliant": "true"},
                "annotations": {"plumbline.dev/cordoned": "t", "kubeadm.alpha/x": "y"},
                "managedFields": [{"manager": "kubelet", "operation": "Update"}]
            },
            "spec": {"taints": [{"key": "gpu", "effect": "NoSchedule"}], "unschedulable": true, "providerID": "aws:///x"},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "GpuStackCompliant", "status": "False"}
                ],
                "images": [{"names": ["x"], "sizeBytes": 1}]
            }
        }))
        .expect("node parses");
        strip_node(&mut node);
        assert_eq!(
            serde_json::to_value(&node).expect("serializes"),
            json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": "n1",
                    "labels": {"team": "ml", "plumbline.dev/compliant": "true"},
                    "annotations": {"plumbline.dev/cordoned": "t"}
                },
                "spec": {"taints": [{"key": "gpu", "effect": "NoSchedule"}], "unschedulable": true},
                "status": {"conditions": [{"type": "GpuStackCompliant", "status": "False"}]}
            })
        );
    }

    #[test]
    fn reads_see_a_write_until_the_watch_catches_up() {
        let cache = Cache::<Node>::new();
        let at = |rv: &str, v: &str| -> Node {
            serde_json::from_value(
                json!({"metadata": {"name": "n1", "resourceVersion": rv, "labels": {"v": v}}}),
            )
            .expect("node parses")
        };
        cache.apply(&Event::Apply(at("5", "watched")));
        cache.write_through(at("7", "written"));
        let label = |c: &Cache<Node>| c.get("n1").and_then(|n| n.labels().get("v").cloned());
        assert_eq!(label(&cache).as_deref(), Some("written"));
        // An older event arriving late does not hide the write.
        cache.apply(&Event::Apply(at("6", "older")));
        assert_eq!(label(&cache).as_deref(), Some("written"));
        assert_eq!(
            cache.all()[0].labels().get("v").map(String::as_str),
            Some("written")
        );
        // The watch reaches the write: the overlay goes.
        cache.apply(&Event::Apply(at("8", "newer")));
        assert_eq!(label(&cache).as_deref(), Some("newer"));
    }
}
