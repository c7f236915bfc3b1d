//! The object store: every object of every resource, one global
//! `resourceVersion` counter, a bounded per-resource event log for watch
//! replay, and a broadcast channel per resource for live watchers.
//!
//! All writes take one mutex, so read-modify-write (patch, apply, the
//! optimistic-concurrency check) is atomic; serialisation and network I/O
//! happen outside it, on `Arc`'d values.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::convert::view;
use crate::error::ApiError;
use crate::patch;
use crate::resources::{Registry, ResourceDef, crd_defs, list_keys_for};
use crate::selector::{FieldSelector, LabelSelector};
use crate::util::{self, meta_mut, meta_str};

pub(crate) const CRD_KEY: &str = "customresourcedefinitions.apiextensions.k8s.io";

/// Kind of change a watch event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change, shared by every watcher through an `Arc`.
#[derive(Debug)]
pub(crate) struct WatchEvent {
    pub kind: EventType,
    pub rv: u64,
    pub object: Arc<Value>,
    /// The object before a modification, so filtered watches can turn a
    /// change into ADDED or DELETED when it enters or leaves the selection.
    pub prev: Option<Arc<Value>>,
}

/// A committed write, as [`crate::Sim::subscribe`] reports it.
#[derive(Debug, Clone)]
pub struct Committed {
    /// `create`, `update`, `patch`, `apply`, `delete`, or `gc`/`cascade` for
    /// deletions the server made itself, `store` for the library API.
    pub verb: String,
    /// Store key: `nodes`, `leases.coordination.k8s.io`, `nodegpubaselines.plumbline.dev`.
    pub resource: String,
    pub event: EventType,
    pub resource_version: u64,
    pub object: Arc<Value>,
}

pub(crate) struct Bucket {
    pub objects: BTreeMap<(String, String), Arc<Value>>,
    log: VecDeque<Arc<WatchEvent>>,
    /// Every event with `rv > floor` is still in `log`.
    pub floor: u64,
    pub tx: broadcast::Sender<Arc<WatchEvent>>,
}

impl Bucket {
    fn new() -> Self {
        Bucket {
            objects: BTreeMap::new(),
            log: VecDeque::new(),
            floor: 0,
            tx: broadcast::channel(4096).0,
        }
    }
}

pub(crate) struct State {
    pub rv: u64,
    pub registry: Registry,
    pub buckets: HashMap<String, Bucket>,
    history: usize,
    commits: broadcast::Sender<Committed>,
    /// Bumped when the set of served resources changes (discovery/OpenAPI hashes).
    pub registry_generation: u64,
    nonce: u64,
}

/// How unknown fields are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

#[derive(Debug, Clone)]
pub(crate) struct WriteOpts {
    pub dry_run: bool,
    pub manager: String,
    pub field_validation: FieldValidation,
    pub verb: &'static str,
    /// The library API seeds objects with their status as given.
    pub keep_status: bool,
}

impl WriteOpts {
    pub fn library(verb: &'static str) -> Self {
        WriteOpts {
            dry_run: false,
            manager: "plumbline-sim".into(),
            field_validation: FieldValidation::Warn,
            verb,
            keep_status: true,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOpts {
    pub dry_run: bool,
    pub orphan: bool,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

#[derive(Debug)]
pub(crate) struct WriteResult {
    pub object: Value,
    pub warnings: Vec<String>,
    pub created: bool,
}

/// Patch body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

pub(crate) struct ListResult {
    pub items: Vec<Arc<Value>>,
    pub rv: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WatchFrom {
    /// Synthetic ADDED for every current object, then live events.
    Current,
    /// Replay events after this resourceVersion, then live events.
    Since(u64),
}

pub(crate) struct WatchStart {
    pub initial: Vec<Arc<WatchEvent>>,
    pub rx: broadcast::Receiver<Arc<WatchEvent>>,
    pub rv: u64,
}

pub(crate) struct Store {
    state: Mutex<State>,
}

type Causes = Vec<(String, String, String)>;

/// A pending deletion: store key, object key, final state, verb.
type Cascade = (String, (String, String), Arc<Value>, String);

fn key_of(def: &ResourceDef, ns: &str, name: &str) -> (String, String) {
    (
        if def.namespaced {
            ns.to_string()
        } else {
            String::new()
        },
        name.to_string(),
    )
}

fn rv_of(obj: &Value) -> u64 {
    meta_str(obj, "resourceVersion")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn set_rv(obj: &mut Value, rv: u64) {
    meta_mut(obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
}

/// Whether anything outside `metadata` (and `status`, when it is a
/// subresource) differs: the rule for bumping `metadata.generation`.
fn spec_changed(def: &ResourceDef, a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return true;
    };
    let skip = |k: &str| k == "metadata" || (def.status && k == "status");
    let keys: HashSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| !skip(k))
        .any(|k| a.get(k.as_str()) != b.get(k.as_str()))
}

/// Equal apart from `resourceVersion` and `managedFields`: a no-op write.
fn same_content(a: &Value, b: &Value) -> bool {
    let (Some(am), Some(bm)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    if am.len() != bm.len() {
        return false;
    }
    for (k, v) in am {
        let Some(w) = bm.get(k) else { return false };
        if k == "metadata" {
            let strip = |m: &Value| -> Map<String, Value> {
                let mut m = m.as_object().cloned().unwrap_or_default();
                m.remove("resourceVersion");
                m.remove("managedFields");
                m
            };
            if strip(v) != strip(w) {
                return false;
            }
        } else if v != w {
            return false;
        }
    }
    true
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && name
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

pub(crate) fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    util::hex_encode(
        json!({"rv": rv, "ns": ns, "name": name})
            .to_string()
            .as_bytes(),
    )
}

fn decode_continue(tok: &str) -> Option<(u64, String, String)> {
    let bytes = util::hex_decode(tok)?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    Some((
        v.get("rv")?.as_u64()?,
        v.get("ns")?.as_str()?.to_string(),
        v.get("name")?.as_str()?.to_string(),
    ))
}

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.";

impl Store {
    pub fn new(history: usize) -> Self {
        let mut st = State {
            rv: 0,
            registry: Registry::with_builtins(),
            buckets: HashMap::new(),
            history: history.max(1),
            commits: broadcast::channel(8192).0,
            registry_generation: 1,
            nonce: rand::random(),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let def = st
                .registry
                .find("", "v1", "namespaces")
                .expect("invariant: namespaces are a built-in resource");
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            st.create(&def, None, obj, &WriteOpts::library("store"))
                .expect("invariant: initial namespaces are valid and new");
        }
        Store {
            state: Mutex::new(st),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every
        // mutation is committed at the end), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe_commits(&self) -> broadcast::Receiver<Committed> {
        self.lock().commits.subscribe()
    }
}

impl State {
    fn bucket(&mut self, key: &str) -> &mut Bucket {
        self.buckets
            .entry(key.to_string())
            .or_insert_with(Bucket::new)
    }

    pub fn get(&self, def: &ResourceDef, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.buckets
            .get(&def.store_key)?
            .objects
            .get(&key_of(def, ns, name))
            .cloned()
    }

    fn emit(
        &mut self,
        key: &str,
        kind: EventType,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
        verb: &str,
    ) {
        let rv = self.rv;
        let history = self.history;
        let ev = Arc::new(WatchEvent {
            kind,
            rv,
            object: object.clone(),
            prev,
        });
        let b = self.bucket(key);
        b.log.push_back(ev.clone());
        while b.log.len() > history {
            if let Some(old) = b.log.pop_front() {
                b.floor = old.rv;
            }
        }
        let _ = b.tx.send(ev);
        let _ = self.commits.send(Committed {
            verb: verb.to_string(),
            resource: key.to_string(),
            event: kind,
            resource_version: rv,
            object,
        });
    }

    /// Changes whenever the served resources change (OpenAPI `?hash=`).
    pub fn openapi_tag(&self) -> String {
        format!("{:x}-{}", self.nonce, self.registry_generation)
    }

    /// Forgets history so that every resourceVersion before now is expired.
    pub fn expire_history(&mut self, key: &str) {
        let rv = self.rv;
        let b = self.bucket(key);
        b.log.clear();
        b.floor = rv;
    }

    fn check_namespace(&self, def: &ResourceDef, ns: &str) -> Result<(), ApiError> {
        if !def.namespaced {
            return Ok(());
        }
        let exists = self
            .buckets
            .get("namespaces")
            .is_some_and(|b| b.objects.contains_key(&(String::new(), ns.to_string())));
        if exists {
            Ok(())
        } else {
            Err(ApiError::not_found("namespaces", ns))
        }
    }

    /// Kind-specific defaulting and validation ("admission"); returns warnings.
    fn admit(
        &self,
        def: &ResourceDef,
        obj: &mut Value,
        old: Option<&Value>,
        opts: &WriteOpts,
    ) -> Result<Vec<String>, ApiError> {
        let name = meta_str(obj, "name").unwrap_or("").to_string();
        let mut warnings = Vec::new();
        if let Some(crd) = &def.crd {
            if let Some(schema) = &crd.schema {
                // The server's order: prune, default, validate.
                // The schema governs the body; identity fields are the server's.
                let saved: Vec<(String, Value)> = ["apiVersion", "kind", "metadata"]
                    .iter()
                    .filter_map(|k| obj.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect();
                let unknown = schema.prune(obj);
                if let Some(m) = obj.as_object_mut() {
                    for (k, v) in saved {
                        m.insert(k, v);
                    }
                }
                schema.apply_defaults(obj);
                let unknown: Vec<String> = unknown
                    .into_iter()
                    .filter(|p| !p.starts_with("metadata") && p != "apiVersion" && p != "kind")
                    .collect();
                match opts.field_validation {
                    FieldValidation::Strict if !unknown.is_empty() => {
                        let list: Vec<String> = unknown
                            .iter()
                            .map(|p| format!("unknown field \"{p}\""))
                            .collect();
                        return Err(ApiError::bad_request(format!(
                            "{}.{} \"{name}\" is invalid: strict decoding error: {}",
                            def.kind,
                            def.group,
                            list.join(", ")
                        ))
                        .with_details(
                            json!({"name": name, "group": def.group, "kind": def.kind}),
                        ));
                    }
                    FieldValidation::Warn => {
                        warnings.extend(unknown.iter().map(|p| format!("unknown field \"{p}\"")));
                    }
                    _ => {}
                }
                let causes: Causes = schema
                    .validate(obj, old)
                    .into_iter()
                    .map(|c| (c.reason, c.field, c.message))
                    .collect();
                if !causes.is_empty() {
                    return Err(ApiError::invalid(&def.kind, &def.group, &name, &causes));
                }
            }
            return Ok(warnings);
        }
        match (def.group.as_str(), def.kind.as_str()) {
            ("", "Secret") => {
                if let Some(Value::Object(sd)) =
                    obj.as_object_mut().and_then(|m| m.remove("stringData"))
                {
                    let data = obj
                        .as_object_mut()
                        .expect("invariant: object bodies are checked to be JSON objects")
                        .entry("data")
                        .or_insert_with(|| json!({}));
                    for (k, v) in sd {
                        let s = v.as_str().unwrap_or("").as_bytes().to_vec();
                        data[k] = Value::String(util::base64_encode(&s));
                    }
                }
            }
            ("", "Namespace") => {
                let n = name.clone();
                let m = meta_mut(obj);
                let labels = m.entry("labels").or_insert_with(|| json!({}));
                if labels.is_object() {
                    labels["kubernetes.io/metadata.name"] = Value::String(n);
                }
                if obj.pointer("/status/phase").is_none() {
                    obj["status"] = json!({"phase": "Active"});
                }
                if obj.pointer("/spec/finalizers").is_none() {
                    obj["spec"] = json!({"finalizers": ["kubernetes"]});
                }
            }
            ("", "Service")
                if obj.pointer("/spec/clusterIP").is_none()
                    && obj.pointer("/spec/type").and_then(Value::as_str)
                        != Some("ExternalName") =>
            {
                let n = self.rv % 65_000;
                let ip = format!("10.96.{}.{}", n / 250, n % 250 + 2);
                if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("clusterIP".into(), Value::String(ip.clone()));
                    spec.insert("clusterIPs".into(), json!([ip]));
                }
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                let defs = crd_defs(obj).map_err(|causes| {
                    ApiError::invalid("CustomResourceDefinition", &def.group, &name, &causes)
                })?;
                let _ = defs;
                set_crd_status(obj, old);
            }
            _ => {}
        }
        Ok(warnings)
    }

    pub fn create(
        &mut self,
        def: &Arc<ResourceDef>,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        check_body(def, &obj)?;
        let ns = normalize_namespace(def, ns, &mut obj)?;
        {
            let m = meta_mut(&mut obj);
            let has_name = m
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !has_name && let Some(g) = m.get("generateName").and_then(Value::as_str) {
                let n = format!("{g}{}", util::random_suffix(5));
                m.insert("name".into(), Value::String(n));
            }
            if opts.keep_status {
                m.remove("resourceVersion");
            } else if m
                .get("resourceVersion")
                .and_then(Value::as_str)
                .is_some_and(|r| !r.is_empty())
            {
                return Err(ApiError::internal(
                    "resourceVersion should not be set on objects to be created",
                ));
            }
            m.remove("resourceVersion");
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            m.insert("uid".into(), Value::String(util::new_uid()));
            m.insert(
                "creationTimestamp".into(),
                Value::String(util::now_rfc3339()),
            );
            m.insert("generation".into(), json!(1));
        }
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        if name.is_empty() {
            return Err(ApiError::invalid(
                &def.kind,
                &def.group,
                "",
                &[(
                    "FieldValueRequired".into(),
                    "metadata.name".into(),
                    "Required value: name or generateName is required".into(),
                )],
            ));
        }
        if !valid_name(&name) && def.kind != "Event" {
            return Err(ApiError::invalid(
                &def.kind,
                &def.group,
                &name,
                &[(
                    "FieldValueInvalid".into(),
                    "metadata.name".into(),
                    format!(
                        "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                    ),
                )],
            ));
        }
        if def.is_custom()
            && def.status
            && !opts.keep_status
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        if def.kind != "Namespace" || !def.group.is_empty() {
            self.check_namespace(def, &ns)?;
        }
        let warnings = self.admit(def, &mut obj, None, opts)?;
        let key = key_of(def, &ns, &name);
        if self
            .buckets
            .get(&def.store_key)
            .is_some_and(|b| b.objects.contains_key(&key))
        {
            return Err(ApiError::already_exists(&def.qualified(), &name));
        }
        patch::track_update(None, &mut obj, &opts.manager, list_keys_for(def).as_ref());
        self.insert_new(def, key, obj, opts, warnings)
    }

    fn insert_new(
        &mut self,
        def: &Arc<ResourceDef>,
        key: (String, String),
        mut obj: Value,
        opts: &WriteOpts,
        warnings: Vec<String>,
    ) -> Result<WriteResult, ApiError> {
        if opts.dry_run {
            return Ok(WriteResult {
                object: obj,
                warnings,
                created: true,
            });
        }
        self.rv += 1;
        set_rv(&mut obj, self.rv);
        let arc = Arc::new(obj);
        self.bucket(&def.store_key).objects.insert(key, arc.clone());
        self.emit(
            &def.store_key,
            EventType::Added,
            arc.clone(),
            None,
            opts.verb,
        );
        if def.store_key == CRD_KEY {
            self.register_crd(&arc);
        }
        Ok(WriteResult {
            object: (*arc).clone(),
            warnings,
            created: true,
        })
    }

    fn register_crd(&mut self, crd: &Value) {
        let name = meta_str(crd, "name").unwrap_or("").to_string();
        if let Ok(defs) = crd_defs(crd) {
            self.registry.set_crd(&name, defs);
            self.registry_generation += 1;
        }
    }

    fn current(&self, def: &ResourceDef, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        self.get(def, ns, name)
            .ok_or_else(|| ApiError::not_found(&def.qualified(), name))
    }

    /// PUT, on the main resource (`sub` None) or `status`.
    pub fn update(
        &mut self,
        def: &Arc<ResourceDef>,
        ns: Option<&str>,
        name: &str,
        mut body: Value,
        sub: Option<&str>,
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        check_body(def, &body)?;
        let ns = normalize_namespace(def, ns, &mut body)?;
        let body_name = meta_str(&body, "name").unwrap_or("");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let old_arc = self.current(def, &ns, name)?;
        let old = view(def, &old_arc).into_owned();
        let body_rv = meta_str(&body, "resourceVersion").filter(|r| !r.is_empty());
        match body_rv {
            Some(rv) if rv != meta_str(&old, "resourceVersion").unwrap_or("") => {
                return Err(ApiError::conflict(&def.qualified(), name));
            }
            Some(_) => {}
            None if def.is_custom() => {
                return Err(ApiError::invalid(
                    &def.kind,
                    &def.group,
                    name,
                    &[(
                        "FieldValueInvalid".into(),
                        "metadata.resourceVersion".into(),
                        "Invalid value: 0x0: must be specified for an update".into(),
                    )],
                ));
            }
            _ => {}
        }
        let new = merge_for_subresource(def, &old, body, sub);
        self.commit_update(def, &ns, name, &old, new, opts, true)
    }

    /// PATCH of any type, on the main resource or `status`.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        def: &Arc<ResourceDef>,
        ns: Option<&str>,
        name: &str,
        ptype: PatchType,
        body: &Value,
        sub: Option<&str>,
        force: bool,
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        let ns_s = if def.namespaced {
            ns.unwrap_or("default").to_string()
        } else {
            String::new()
        };
        let keys = list_keys_for(def);
        if ptype == PatchType::Apply {
            check_body(def, body)?;
            let applied_name = meta_str(body, "name").unwrap_or("");
            if applied_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({applied_name}) does not match the name on the URL ({name})"
                )));
            }
            let live = self
                .get(def, &ns_s, name)
                .map(|a| view(def, &a).into_owned());
            if live.is_none() && sub.is_some() {
                return Err(ApiError::not_found(&def.qualified(), name));
            }
            let mut applied = body.clone();
            if def.namespaced {
                meta_mut(&mut applied).insert("namespace".into(), Value::String(ns_s.clone()));
            }
            let new = patch::server_side_apply(
                live.as_ref(),
                &applied,
                &opts.manager,
                force,
                keys.as_ref(),
            )
            .map_err(|conflicts| apply_conflict_error(def, name, &conflicts))?;
            return match live {
                None => {
                    let mut new = new;
                    meta_mut(&mut new).remove("resourceVersion");
                    self.create_untracked(def, &ns_s, new, opts)
                }
                Some(old) => {
                    if let Some(rv) = meta_str(body, "resourceVersion")
                        && !rv.is_empty()
                        && Some(rv) != meta_str(&old, "resourceVersion")
                    {
                        return Err(ApiError::conflict(&def.qualified(), name));
                    }
                    let new = merge_for_subresource(def, &old, new, sub);
                    self.commit_update(def, &ns_s, name, &old, new, opts, false)
                }
            };
        }
        let old_arc = self.current(def, &ns_s, name)?;
        let old = view(def, &old_arc).into_owned();
        let patched = match ptype {
            PatchType::Merge => {
                if !body.is_object() {
                    return Err(ApiError::bad_request(
                        "json: cannot unmarshal into Go value of type map[string]interface {}",
                    ));
                }
                let mut n = old.clone();
                patch::json_merge_patch(&mut n, body);
                n
            }
            PatchType::Json => patch::json_patch(&old, body).map_err(|e| match e {
                patch::PatchError::TestFailed { .. } => {
                    ApiError::new(422, "Invalid", e.to_string())
                }
                patch::PatchError::Invalid(_) => ApiError::bad_request(e.to_string()),
            })?,
            PatchType::Strategic => {
                if def.is_custom() {
                    return Err(ApiError::unsupported_media_type(
                        "application/strategic-merge-patch+json",
                        &[
                            "application/json-patch+json",
                            "application/merge-patch+json",
                            "application/apply-patch+yaml",
                        ],
                    ));
                }
                patch::strategic_merge_patch(&old, body, keys.as_ref())
                    .map_err(|e| ApiError::bad_request(e.to_string()))?
            }
            PatchType::Apply => unreachable_apply(),
        };
        if !patched.is_object() {
            return Err(ApiError::bad_request("patched object is not a JSON object"));
        }
        let patched_rv = meta_str(&patched, "resourceVersion").filter(|r| !r.is_empty());
        if patched_rv.is_some() && patched_rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::conflict(&def.qualified(), name));
        }
        let new = merge_for_subresource(def, &old, patched, sub);
        self.commit_update(def, &ns_s, name, &old, new, opts, true)
    }

    fn create_untracked(
        &mut self,
        def: &Arc<ResourceDef>,
        ns: &str,
        mut obj: Value,
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        {
            let m = meta_mut(&mut obj);
            m.insert("uid".into(), Value::String(util::new_uid()));
            m.insert(
                "creationTimestamp".into(),
                Value::String(util::now_rfc3339()),
            );
            m.insert("generation".into(), json!(1));
        }
        if def.is_custom()
            && def.status
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        self.check_namespace(def, ns)?;
        let warnings = self.admit(def, &mut obj, None, opts)?;
        self.insert_new(def, key_of(def, ns, &name), obj, opts, warnings)
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_update(
        &mut self,
        def: &Arc<ResourceDef>,
        ns: &str,
        name: &str,
        old: &Value,
        mut new: Value,
        opts: &WriteOpts,
        track: bool,
    ) -> Result<WriteResult, ApiError> {
        // Identity and lifecycle fields belong to the server.
        {
            let om = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
            let m = meta_mut(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
                "name",
            ] {
                match om.get(k) {
                    Some(v) => {
                        m.insert(k.into(), v.clone());
                    }
                    None => {
                        m.remove(k);
                    }
                }
            }
            if def.namespaced {
                m.insert("namespace".into(), Value::String(ns.to_string()));
            } else {
                m.remove("namespace");
            }
        }
        let warnings = self.admit(def, &mut new, Some(old), opts)?;
        // An update or patch that sets managedFields to another record
        // rewrites ownership, and the server commits it even when nothing
        // else changed: kubectl's first `apply --server-side` on an object
        // it applied client-side moves the fields to its apply manager so.
        // (Apply computes the record itself: `track` is false there.)
        let rewrites_ownership = track
            && new
                .pointer("/metadata/managedFields")
                .and_then(Value::as_array)
                .is_some_and(|l| !l.is_empty())
            && new.pointer("/metadata/managedFields") != old.pointer("/metadata/managedFields");
        if spec_changed(def, old, &new) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        if track {
            patch::track_update(
                Some(old),
                &mut new,
                &opts.manager,
                list_keys_for(def).as_ref(),
            );
        }
        if same_content(old, &new) && !rewrites_ownership {
            return Ok(WriteResult {
                object: old.clone(),
                warnings,
                created: false,
            });
        }
        let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
        let no_finalizers = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty());
        if opts.dry_run {
            return Ok(WriteResult {
                object: new,
                warnings,
                created: false,
            });
        }
        let key = key_of(def, ns, name);
        if deleting && no_finalizers {
            self.rv += 1;
            set_rv(&mut new, self.rv);
            let arc = Arc::new(new);
            self.remove_and_cascade(&def.store_key, key, arc.clone(), opts.verb, false);
            return Ok(WriteResult {
                object: (*arc).clone(),
                warnings,
                created: false,
            });
        }
        self.rv += 1;
        set_rv(&mut new, self.rv);
        let arc = Arc::new(new);
        let prev = self.bucket(&def.store_key).objects.insert(key, arc.clone());
        self.emit(
            &def.store_key,
            EventType::Modified,
            arc.clone(),
            prev,
            opts.verb,
        );
        if def.store_key == CRD_KEY {
            self.register_crd(&arc);
        }
        Ok(WriteResult {
            object: (*arc).clone(),
            warnings,
            created: false,
        })
    }

    pub fn delete(
        &mut self,
        def: &Arc<ResourceDef>,
        ns: Option<&str>,
        name: &str,
        d: &DeleteOpts,
        verb: &'static str,
    ) -> Result<Value, ApiError> {
        let ns = if def.namespaced {
            ns.unwrap_or("default").to_string()
        } else {
            String::new()
        };
        let cur = self.current(def, &ns, name)?;
        if let Some(uid) = &d.uid
            && meta_str(&cur, "uid") != Some(uid.as_str())
        {
            return Err(
                ApiError::conflict(&def.qualified(), name).with_message(format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&cur, "uid").unwrap_or("")
                )),
            );
        }
        if let Some(rv) = &d.resource_version
            && meta_str(&cur, "resourceVersion") != Some(rv.as_str())
        {
            return Err(ApiError::conflict(&def.qualified(), name));
        }
        let out = view(def, &cur).into_owned();
        if d.dry_run {
            return Ok(out);
        }
        let has_finalizers = cur
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let key = key_of(def, &ns, name);
        if has_finalizers {
            if cur.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(out);
            }
            let mut new = (*cur).clone();
            {
                let m = meta_mut(&mut new);
                m.insert(
                    "deletionTimestamp".into(),
                    Value::String(util::now_rfc3339()),
                );
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            self.rv += 1;
            set_rv(&mut new, self.rv);
            let arc = Arc::new(new);
            let prev = self.bucket(&def.store_key).objects.insert(key, arc.clone());
            self.emit(&def.store_key, EventType::Modified, arc.clone(), prev, verb);
            return Ok(view(def, &arc).into_owned());
        }
        self.rv += 1;
        let mut gone = (*cur).clone();
        set_rv(&mut gone, self.rv);
        let arc = Arc::new(gone);
        self.remove_and_cascade(&def.store_key, key, arc.clone(), verb, d.orphan);
        Ok(view(def, &arc).into_owned())
    }

    /// Removes an object (whose final state, with the deletion's
    /// resourceVersion, is `last`), then what its deletion implies:
    /// a namespace's contents, a CRD's objects, and dependents whose
    /// ownerReferences name it.
    fn remove_and_cascade(
        &mut self,
        store_key: &str,
        key: (String, String),
        last: Arc<Value>,
        verb: &str,
        orphan: bool,
    ) {
        let mut queue: VecDeque<Cascade> = VecDeque::new();
        queue.push_back((store_key.to_string(), key, last, verb.to_string()));
        while let Some((skey, key, last, verb)) = queue.pop_front() {
            let Some(_) = self.bucket(&skey).objects.remove(&key) else {
                continue;
            };
            self.emit(&skey, EventType::Deleted, last.clone(), None, &verb);
            let uid = meta_str(&last, "uid").unwrap_or("").to_string();
            if skey == "namespaces" {
                let ns = key.1.clone();
                let keys: Vec<String> = self.buckets.keys().cloned().collect();
                for k in keys {
                    let names: Vec<((String, String), Arc<Value>)> = self.buckets[&k]
                        .objects
                        .iter()
                        .filter(|((n, _), _)| *n == ns)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    for (okey, obj) in names {
                        self.rv += 1;
                        let mut o = (*obj).clone();
                        set_rv(&mut o, self.rv);
                        queue.push_back((k.clone(), okey, Arc::new(o), "cascade".into()));
                    }
                }
            }
            if skey == CRD_KEY {
                let group = last
                    .pointer("/spec/group")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let plural = last
                    .pointer("/spec/names/plural")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let data_key = format!("{plural}.{group}");
                if let Some(b) = self.buckets.remove(&data_key) {
                    for (_, obj) in b.objects {
                        self.rv += 1;
                        let mut o = (*obj).clone();
                        set_rv(&mut o, self.rv);
                        let _ = b.tx.send(Arc::new(WatchEvent {
                            kind: EventType::Deleted,
                            rv: self.rv,
                            object: Arc::new(o),
                            prev: None,
                        }));
                    }
                    // Dropping the sender ends every watch of the resource.
                }
                self.registry.remove_crd(&key.1);
                self.registry_generation += 1;
            }
            if !orphan && !uid.is_empty() {
                let mut dependents = Vec::new();
                for (k, b) in &self.buckets {
                    for (okey, obj) in &b.objects {
                        let owned = obj
                            .pointer("/metadata/ownerReferences")
                            .and_then(Value::as_array)
                            .is_some_and(|refs| {
                                refs.iter()
                                    .any(|r| r.get("uid").and_then(Value::as_str) == Some(&uid))
                            });
                        if owned {
                            dependents.push((k.clone(), okey.clone(), obj.clone()));
                        }
                    }
                }
                for (k, okey, obj) in dependents {
                    self.rv += 1;
                    let mut o = (*obj).clone();
                    set_rv(&mut o, self.rv);
                    let has_finalizers = o
                        .pointer("/metadata/finalizers")
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty());
                    if has_finalizers {
                        if o.pointer("/metadata/deletionTimestamp").is_none() {
                            meta_mut(&mut o).insert(
                                "deletionTimestamp".into(),
                                Value::String(util::now_rfc3339()),
                            );
                        }
                        let arc = Arc::new(o);
                        let prev = self.bucket(&k).objects.insert(okey, arc.clone());
                        self.emit(&k, EventType::Modified, arc, prev, "gc");
                    } else {
                        queue.push_back((k, okey, Arc::new(o), "gc".into()));
                    }
                }
            }
        }
    }

    /// Deletes every object of `def` in `ns` matching the selectors.
    pub fn delete_collection(
        &mut self,
        def: &Arc<ResourceDef>,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        d: &DeleteOpts,
    ) -> Result<Vec<Value>, ApiError> {
        let items = self.list(def, ns, labels, fields, None, None, None)?.items;
        let mut out = Vec::new();
        for item in items {
            let name = meta_str(&item, "name").unwrap_or("").to_string();
            let ins = meta_str(&item, "namespace").map(String::from);
            out.push(self.delete(def, ins.as_deref(), &name, d, "deletecollection")?);
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn list(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        continue_token: Option<&str>,
        exact_rv: Option<u64>,
    ) -> Result<ListResult, ApiError> {
        let empty = BTreeMap::new();
        let (objects, floor) = match self.buckets.get(&def.store_key) {
            Some(b) => (&b.objects, b.floor),
            None => (&empty, 0),
        };
        let mut list_rv = self.rv;
        let mut start: Option<(String, String)> = None;
        if let Some(tok) = continue_token.filter(|t| !t.is_empty()) {
            let (rv, cns, cname) = decode_continue(tok)
                .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
            if rv < floor {
                return Err(ApiError::gone(CONTINUE_EXPIRED));
            }
            list_rv = rv;
            start = Some((cns, cname));
        }
        if let Some(rv) = exact_rv
            && rv < floor
        {
            return Err(ApiError::gone(
                "The resourceVersion for the provided list is too old.",
            ));
        }
        let ns_filter = ns.filter(|_| def.namespaced);
        let range = match (&start, ns_filter) {
            (Some(s), _) => objects.range((
                std::ops::Bound::Excluded(s.clone()),
                std::ops::Bound::Unbounded,
            )),
            (None, Some(n)) => objects.range((n.to_string(), String::new())..),
            (None, None) => objects.range::<(String, String), _>(..),
        };
        let mut items = Vec::new();
        let mut continue_out = None;
        let mut remaining = 0usize;
        let pinned = fields.pinned_name();
        for ((ons, oname), obj) in range {
            if let Some(n) = ns_filter
                && ons != n
            {
                if ons.as_str() > n {
                    break;
                }
                continue;
            }
            if pinned.is_some_and(|p| p != oname) {
                continue;
            }
            if !labels.matches(obj) {
                continue;
            }
            if !fields.is_empty() && !fields.matches(&view(def, obj)) {
                continue;
            }
            if continue_out.is_some() {
                remaining += 1;
                continue;
            }
            if limit.is_some_and(|l| l > 0 && items.len() >= l) {
                let last: &Arc<Value> = items.last().expect("invariant: limit > 0 items taken");
                continue_out = Some(encode_continue(
                    list_rv,
                    meta_str(last, "namespace").unwrap_or(""),
                    meta_str(last, "name").unwrap_or(""),
                ));
                remaining += 1;
                continue;
            }
            items.push(obj.clone());
        }
        Ok(ListResult {
            items,
            rv: list_rv,
            remaining: continue_out.as_ref().map(|_| remaining),
            continue_token: continue_out,
        })
    }

    pub fn watch_start(
        &mut self,
        def: &ResourceDef,
        from: WatchFrom,
    ) -> Result<WatchStart, ApiError> {
        let rv = self.rv;
        let b = self.bucket(&def.store_key);
        let rx = b.tx.subscribe();
        let initial = match from {
            WatchFrom::Current => b
                .objects
                .values()
                .map(|o| {
                    Arc::new(WatchEvent {
                        kind: EventType::Added,
                        rv: rv_of(o),
                        object: o.clone(),
                        prev: None,
                    })
                })
                .collect(),
            WatchFrom::Since(since) => {
                if since < b.floor {
                    return Err(ApiError::gone(format!(
                        "too old resource version: {since} ({})",
                        b.floor + 1
                    )));
                }
                b.log.iter().filter(|e| e.rv > since).cloned().collect()
            }
        };
        Ok(WatchStart { initial, rx, rv })
    }

    /// Number of stored objects per store key.
    pub fn counts(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = self
            .buckets
            .iter()
            .map(|(k, b)| (k.clone(), b.objects.len()))
            .collect();
        v.sort();
        v
    }
}

fn unreachable_apply() -> Value {
    // Apply patches return early above; this arm exists for exhaustiveness.
    Value::Null
}

fn apply_conflict_error(
    def: &ResourceDef,
    name: &str,
    conflicts: &[patch::ApplyConflict],
) -> ApiError {
    let n = conflicts.len();
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| format!("- conflict with \"{}\": {}", c.manager, c.field))
        .collect();
    let message = if n == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with \"{}\": {}",
            conflicts[0].manager, conflicts[0].field
        )
    } else {
        format!(
            "Apply failed with {n} conflicts: conflicts with \"{}\":\n{}",
            conflicts.first().map(|c| c.manager.as_str()).unwrap_or(""),
            lines.join("\n")
        )
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| {
            json!({"reason": "FieldManagerConflict",
                   "message": format!("conflict with \"{}\"", c.manager),
                   "field": c.field})
        })
        .collect();
    ApiError::new(409, "Conflict", message).with_details(json!({
        "name": name, "group": def.group, "kind": def.plural, "causes": causes
    }))
}

/// Main-resource writes keep the stored status; `/status` writes keep
/// everything but status.
fn merge_for_subresource(
    def: &ResourceDef,
    old: &Value,
    mut new: Value,
    sub: Option<&str>,
) -> Value {
    match sub {
        Some("status") => {
            let mut out = old.clone();
            let status = new.as_object_mut().and_then(|m| m.remove("status"));
            let mf = new.pointer("/metadata/managedFields").cloned();
            if let Some(m) = out.as_object_mut() {
                match status {
                    Some(s) => {
                        m.insert("status".into(), s);
                    }
                    None => {
                        m.remove("status");
                    }
                }
            }
            if let Some(mf) = mf {
                meta_mut(&mut out).insert("managedFields".into(), mf);
            }
            out
        }
        _ => {
            if def.status
                && let Some(m) = new.as_object_mut()
            {
                match old.get("status") {
                    Some(s) => {
                        m.insert("status".into(), s.clone());
                    }
                    None => {
                        m.remove("status");
                    }
                }
            }
            new
        }
    }
}

fn check_body(def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request is not a JSON object",
        ));
    }
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() || av.is_empty() {
        return Err(ApiError::bad_request(
            "Object 'Kind' is missing in the request body",
        ));
    }
    let same_group =
        !def.group.is_empty() && av.split_once('/').is_some_and(|(g, _)| g == def.group);
    if kind != def.kind || (av != def.api_version() && !(def.is_custom() && same_group)) {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            def.api_version()
        )));
    }
    Ok(())
}

fn normalize_namespace(
    def: &ResourceDef,
    ns: Option<&str>,
    obj: &mut Value,
) -> Result<String, ApiError> {
    let m = meta_mut(obj);
    if !def.namespaced {
        m.remove("namespace");
        return Ok(String::new());
    }
    let body_ns = m.get("namespace").and_then(Value::as_str).map(String::from);
    let ns = match (ns, body_ns.as_deref()) {
        (Some(p), Some(b)) if !b.is_empty() && p != b => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        (Some(p), _) => p.to_string(),
        (None, Some(b)) if !b.is_empty() => b.to_string(),
        _ => "default".to_string(),
    };
    m.insert("namespace".into(), Value::String(ns.clone()));
    Ok(ns)
}

/// What the apiextensions controllers would write: names accepted, established.
fn set_crd_status(obj: &mut Value, old: Option<&Value>) {
    let now = util::now_rfc3339();
    let since = |t: &str| {
        old.and_then(|o| o.pointer("/status/conditions"))
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
            })
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| Value::String(now.clone()))
    };
    let names = obj
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut accepted = names.clone();
    if accepted.get("singular").is_none()
        && let Some(k) = names.get("kind").and_then(Value::as_str)
    {
        accepted["singular"] = Value::String(k.to_lowercase());
    }
    if accepted.get("listKind").is_none()
        && let Some(k) = names.get("kind").and_then(Value::as_str)
    {
        accepted["listKind"] = Value::String(format!("{k}List"));
    }
    let mut stored: Vec<Value> = old
        .and_then(|o| o.pointer("/status/storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(vs) = obj.pointer("/spec/versions").and_then(Value::as_array) {
        for v in vs {
            if v.get("storage").and_then(Value::as_bool) == Some(true)
                && let Some(n) = v.get("name")
                && !stored.contains(n)
            {
                stored.push(n.clone());
            }
        }
    }
    obj["status"] = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": since("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": since("Established")},
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "ns", "a-b");
        assert_eq!(decode_continue(&t), Some((42, "ns".into(), "a-b".into())));
        assert_eq!(decode_continue("zz"), None);
    }

    #[test]
    fn no_op_detection_ignores_resource_version_and_managed_fields() {
        let a = json!({"metadata": {"name": "a", "resourceVersion": "1", "managedFields": [1]}, "spec": {"x": 1}});
        let b = json!({"metadata": {"name": "a", "resourceVersion": "2"}, "spec": {"x": 1}});
        assert!(same_content(&a, &b));
        let c = json!({"metadata": {"name": "a"}, "spec": {"x": 2}});
        assert!(!same_content(&a, &c));
    }

    #[test]
    fn a_managed_fields_rewrite_commits_where_a_plain_no_op_does_not() {
        let store = Store::new(100);
        let mut st = store.lock();
        let def = st.registry.find_kind("v1", "ConfigMap").expect("served");
        let opts = WriteOpts::library("test");
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "m", "namespace": "default"}, "data": {"a": "1"}});
        let created = st
            .create(&def, Some("default"), cm, &opts)
            .expect("created");
        let rv = |o: &Value| meta_str(o, "resourceVersion").unwrap_or("").to_string();
        let same = json!({"data": {"a": "1"}});
        let r = st
            .patch(
                &def,
                Some("default"),
                "m",
                PatchType::Merge,
                &same,
                None,
                false,
                &opts,
            )
            .expect("patched");
        assert_eq!(rv(&r.object), rv(&created.object), "nothing changed");
        // What kubectl sends before its first server-side apply of an
        // object it created with client-side apply.
        let migrate = json!([{"op": "replace", "path": "/metadata/managedFields", "value": [{
            "manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
            "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {".": {}, "f:a": {}}}}]}]);
        let r = st
            .patch(
                &def,
                Some("default"),
                "m",
                PatchType::Json,
                &migrate,
                None,
                false,
                &opts,
            )
            .expect("patched");
        assert_ne!(rv(&r.object), rv(&created.object), "ownership changed");
        let stored = st.get(&def, "default", "m").expect("stored");
        let managers: Vec<&str> = stored["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert_eq!(managers, ["kubectl"]);
    }
}
