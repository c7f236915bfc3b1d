//! The resource registry: which group/version/resources exist, their kinds,
//! scope, subresources and, for custom resources, the compiled schema and
//! printer columns. Built-ins are a fixed table; CRDs add and remove entries.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::patch::ListKeys;
use crate::validation::CompiledSchema;

/// One served version of a custom resource.
#[derive(Debug)]
pub(crate) struct CrdVersion {
    /// The CRD's `metadata.name` (`plural.group`).
    pub crd_name: String,
    /// `openAPIV3Schema` as written in the CRD.
    pub raw_schema: Value,
    pub schema: Option<CompiledSchema>,
    pub printer_columns: Vec<Value>,
}

/// A resource served at `/api(s)/<group>/<version>/<plural>`.
#[derive(Debug)]
pub(crate) struct ResourceDef {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Serves `/status` and isolates status from main-resource writes.
    pub status: bool,
    /// Where objects live; versions of one resource share it
    /// (core and `events.k8s.io` events share `events`).
    pub store_key: String,
    pub crd: Option<CrdVersion>,
}

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `nodes` or `nodegpubaselines.plumbline.dev`, as error messages name it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn is_custom(&self) -> bool {
        self.crd.is_some()
    }

    /// Path prefix of the group version (`/api/v1`, `/apis/apps/v1`).
    pub fn gv_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    categories: &'static [&'static str],
    status: bool,
}

#[allow(clippy::too_many_arguments)]
const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    categories: &'static [&'static str],
    status: bool,
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        namespaced,
        short,
        categories,
        status,
    }
}

const ALL: &[&str] = &["all"];

const BUILTINS: &[Builtin] = &[
    b("", "v1", "Node", "nodes", false, &["no"], &[], true),
    b(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        &[],
        true,
    ),
    b("", "v1", "Pod", "pods", true, &["po"], ALL, true),
    b("", "v1", "Event", "events", true, &["ev"], &[], false),
    b(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        true,
        &["cm"],
        &[],
        false,
    ),
    b("", "v1", "Secret", "secrets", true, &[], &[], false),
    b(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        &[],
        false,
    ),
    b("", "v1", "Service", "services", true, &["svc"], ALL, true),
    b(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        true,
        &["ep"],
        &[],
        false,
    ),
    b(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        &["pvc"],
        &[],
        true,
    ),
    b(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        true,
        &["quota"],
        &[],
        true,
    ),
    b(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        true,
        &["limits"],
        &[],
        false,
    ),
    b(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        &["deploy"],
        ALL,
        true,
    ),
    b(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        true,
        &["ds"],
        ALL,
        true,
    ),
    b(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        &["sts"],
        ALL,
        true,
    ),
    b(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        true,
        &["rs"],
        ALL,
        true,
    ),
    b("batch", "v1", "Job", "jobs", true, &[], ALL, true),
    b(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        true,
        &["cj"],
        ALL,
        true,
    ),
    b(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        true,
        &["ev"],
        &[],
        false,
    ),
    b(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        true,
        &[],
        &[],
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
        &[],
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
        &[],
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
        &[],
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
        &[],
        false,
    ),
    b(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["pdb"],
        &[],
        true,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        &["netpol"],
        &[],
        false,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
        &[],
        true,
    ),
    b(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        false,
        &["pc"],
        &[],
        false,
    ),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        false,
        &[],
        &["api-extensions"],
        true,
    ),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        false,
        &[],
        &["api-extensions"],
        false,
    ),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
        &[],
        &["api-extensions"],
        false,
    ),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
        &[],
        &["api-extensions"],
        false,
    ),
    b(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        &["api-extensions"],
        true,
    ),
];

/// Every served resource, built-in and custom.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    defs: Vec<Arc<ResourceDef>>,
}

impl Registry {
    pub fn with_builtins() -> Self {
        let defs = BUILTINS
            .iter()
            .map(|b| {
                Arc::new(ResourceDef {
                    group: b.group.into(),
                    version: b.version.into(),
                    kind: b.kind.into(),
                    list_kind: format!("{}List", b.kind),
                    plural: b.plural.into(),
                    singular: b.kind.to_lowercase(),
                    namespaced: b.namespaced,
                    short_names: b.short.iter().map(|s| s.to_string()).collect(),
                    categories: b.categories.iter().map(|s| s.to_string()).collect(),
                    status: b.status,
                    store_key: if b.plural == "events" {
                        "events".into()
                    } else if b.group.is_empty() {
                        b.plural.into()
                    } else {
                        format!("{}.{}", b.plural, b.group)
                    },
                    crd: None,
                })
            })
            .collect();
        Registry { defs }
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
            .cloned()
    }

    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceDef>> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        self.defs
            .iter()
            .find(|d| d.group == group && d.version == version && d.kind == kind)
            .cloned()
    }

    /// Groups in a stable order (built-ins first as declared, then CRD groups),
    /// each with its versions, preferred first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for d in &self.defs {
            match out.iter_mut().find(|(g, _)| *g == d.group) {
                Some((_, vs)) => {
                    if !vs.contains(&d.version) {
                        vs.push(d.version.clone());
                    }
                }
                None => out.push((d.group.clone(), vec![d.version.clone()])),
            }
        }
        for (_, vs) in &mut out {
            vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }

    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceDef>> {
        self.defs
            .iter()
            .filter(|d| d.group == group && d.version == version)
            .cloned()
            .collect()
    }

    /// Replaces the resources of one CRD with `defs`.
    pub fn set_crd(&mut self, crd_name: &str, defs: Vec<ResourceDef>) {
        self.remove_crd(crd_name);
        self.defs.extend(defs.into_iter().map(Arc::new));
    }

    pub fn remove_crd(&mut self, crd_name: &str) {
        self.defs
            .retain(|d| d.crd.as_ref().is_none_or(|c| c.crd_name != crd_name));
    }
}

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first.
pub(crate) fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, major, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, major, n.parse().unwrap_or(0))
    } else {
        (0, major, 0)
    }
}

/// Builds the resource entries of a CRD, or the field errors that reject it.
pub(crate) fn crd_defs(crd: &Value) -> Result<Vec<ResourceDef>, Vec<(String, String, String)>> {
    let mut errs = Vec::new();
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let name = s(crd.pointer("/metadata/name"));
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let group = s(spec.get("group"));
    let plural = s(spec.pointer("/names/plural"));
    let kind = s(spec.pointer("/names/kind"));
    let mut req = |cond: bool, field: &str, msg: &str| {
        if cond {
            errs.push((
                "FieldValueRequired".to_string(),
                field.to_string(),
                msg.to_string(),
            ));
        }
    };
    req(group.is_empty(), "spec.group", "Required value");
    req(plural.is_empty(), "spec.names.plural", "Required value");
    req(kind.is_empty(), "spec.names.kind", "Required value");
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errs.push((
            "FieldValueInvalid".into(),
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let scope = s(spec.get("scope"));
    if scope != "Namespaced" && scope != "Cluster" {
        errs.push((
            "FieldValueNotSupported".into(),
            "spec.scope".into(),
            format!(
                "Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""
            ),
        ));
    }
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errs.push((
            "FieldValueInvalid".into(),
            "spec.versions".into(),
            "Invalid value: []: must have exactly one version marked as storage version".into(),
        ));
    }
    let storage_count = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !versions.is_empty() && storage_count != 1 {
        errs.push((
            "FieldValueInvalid".into(),
            "spec.versions".into(),
            "Invalid value: must have exactly one version marked as storage version".into(),
        ));
    }
    let mut defs = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let vname = s(v.get("name"));
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let raw_schema = v
            .pointer("/schema/openAPIV3Schema")
            .cloned()
            .unwrap_or(Value::Null);
        let schema = if raw_schema.is_object() {
            match CompiledSchema::compile(&raw_schema) {
                Ok(c) => Some(c),
                Err(e) => {
                    errs.push((
                        "FieldValueInvalid".into(),
                        format!("spec.versions[{i}].schema.openAPIV3Schema"),
                        format!("Invalid value: {e}"),
                    ));
                    None
                }
            }
        } else {
            None
        };
        let strs = |p: &str| -> Vec<String> {
            spec.pointer(p)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        defs.push(ResourceDef {
            group: group.clone(),
            version: vname,
            kind: kind.clone(),
            list_kind: spec
                .pointer("/names/listKind")
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| format!("{kind}List")),
            plural: plural.clone(),
            singular: spec
                .pointer("/names/singular")
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| kind.to_lowercase()),
            namespaced: scope == "Namespaced",
            short_names: strs("/names/shortNames"),
            categories: strs("/names/categories"),
            status: v.pointer("/subresources/status").is_some(),
            store_key: format!("{plural}.{group}"),
            crd: Some(CrdVersion {
                crd_name: name.clone(),
                raw_schema,
                schema,
                printer_columns: v
                    .get("additionalPrinterColumns")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            }),
        });
    }
    if errs.is_empty() { Ok(defs) } else { Err(errs) }
}

/// List keys of built-in kinds, following the strategic-merge and
/// structured-merge metadata of the Kubernetes types.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BuiltinListKeys<'a> {
    pub kind: &'a str,
}

fn keys(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| s.to_string()).collect())
}

fn pod_spec_keys(path: &[&str]) -> Option<Vec<String>> {
    match path {
        ["containers" | "initContainers" | "ephemeralContainers"] => keys(&["name"]),
        ["containers" | "initContainers", "ports"] => keys(&["containerPort", "protocol"]),
        [
            "containers" | "initContainers" | "ephemeralContainers",
            "env",
        ] => keys(&["name"]),
        [
            "containers" | "initContainers" | "ephemeralContainers",
            "volumeMounts",
        ] => keys(&["mountPath"]),
        ["containers" | "initContainers", "volumeDevices"] => keys(&["devicePath"]),
        ["volumes"] | ["imagePullSecrets"] | ["resourceClaims"] => keys(&["name"]),
        ["hostAliases"] => keys(&["ip"]),
        ["topologySpreadConstraints"] => keys(&["topologyKey", "whenUnsatisfiable"]),
        _ => None,
    }
}

impl ListKeys for BuiltinListKeys<'_> {
    fn keys(&self, path: &[&str]) -> Option<Vec<String>> {
        match path {
            ["metadata", "ownerReferences"] => return keys(&["uid"]),
            ["status", "conditions"] => return keys(&["type"]),
            _ => {}
        }
        match self.kind {
            "Node" => match path {
                ["spec", "taints"] => keys(&["key", "effect"]),
                ["status", "addresses"] => keys(&["type"]),
                ["status", "volumesAttached"] => keys(&["name"]),
                _ => None,
            },
            "Pod" => match path {
                ["spec", rest @ ..] => pod_spec_keys(rest),
                ["status", "containerStatuses" | "initContainerStatuses"] => keys(&["name"]),
                _ => None,
            },
            "Service" => match path {
                ["spec", "ports"] => keys(&["port", "protocol"]),
                _ => None,
            },
            "Endpoints" => match path {
                ["subsets", "ports"] => keys(&["name"]),
                _ => None,
            },
            "Deployment" | "DaemonSet" | "StatefulSet" | "ReplicaSet" | "Job" => match path {
                ["spec", "template", "spec", rest @ ..] => pod_spec_keys(rest),
                _ => None,
            },
            "CronJob" => match path {
                ["spec", "jobTemplate", "spec", "template", "spec", rest @ ..] => {
                    pod_spec_keys(rest)
                }
                _ => None,
            },
            _ => None,
        }
    }
}

/// List keys of a custom resource: `x-kubernetes-list-type: map` lists are
/// keyed by `x-kubernetes-list-map-keys`; every other list is atomic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SchemaListKeys<'a> {
    pub schema: &'a Value,
}

impl ListKeys for SchemaListKeys<'_> {
    fn keys(&self, path: &[&str]) -> Option<Vec<String>> {
        let mut cur = self.schema;
        for part in path {
            if cur.get("type").and_then(Value::as_str) == Some("array") {
                cur = cur.get("items")?;
            }
            cur = match cur.pointer(&format!("/properties/{part}")) {
                Some(s) => s,
                None => cur.get("additionalProperties")?,
            };
        }
        if cur.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
            return if path == ["metadata", "ownerReferences"] {
                keys(&["uid"])
            } else {
                None
            };
        }
        cur.get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(String::from))
                    .collect()
            })
    }
}

/// The list keys for objects of `def`.
pub(crate) fn list_keys_for(def: &ResourceDef) -> Box<dyn ListKeys + '_> {
    match &def.crd {
        Some(c) => Box::new(SchemaListKeys {
            schema: &c.raw_schema,
        }),
        None => Box::new(BuiltinListKeys { kind: &def.kind }),
    }
}

/// Group-version-resource triples sorted for discovery output.
pub(crate) fn sorted_by_plural(defs: &[Arc<ResourceDef>]) -> Vec<Arc<ResourceDef>> {
    let mut m: BTreeMap<&str, Arc<ResourceDef>> = BTreeMap::new();
    for d in defs {
        m.insert(&d.plural, d.clone());
    }
    m.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn version_priority_orders_like_kubernetes() {
        let mut v = vec!["v1alpha1", "v2", "v1beta2", "v1", "v1beta1"];
        v.sort_by_key(|x| std::cmp::Reverse(version_priority(x)));
        assert_eq!(v, vec!["v2", "v1", "v1beta2", "v1beta1", "v1alpha1"]);
    }

    #[test]
    fn builtin_list_keys() {
        let k = BuiltinListKeys { kind: "Node" };
        assert_eq!(k.keys(&["spec", "taints"]), keys(&["key", "effect"]));
        assert_eq!(k.keys(&["status", "conditions"]), keys(&["type"]));
        let k = BuiltinListKeys { kind: "DaemonSet" };
        assert_eq!(
            k.keys(&["spec", "template", "spec", "containers", "env"]),
            keys(&["name"])
        );
        assert_eq!(k.keys(&["spec", "template", "spec", "tolerations"]), None);
    }

    #[test]
    fn schema_list_keys_follow_list_map_keys() {
        let schema = json!({"type": "object", "properties": {"status": {"type": "object", "properties": {
            "gpus": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["index"],
                     "items": {"type": "object", "properties": {"procs": {"type": "array", "items": {"type": "string"}}}}},
            "tags": {"type": "array", "items": {"type": "string"}}}}}});
        let k = SchemaListKeys { schema: &schema };
        assert_eq!(k.keys(&["status", "gpus"]), keys(&["index"]));
        assert_eq!(k.keys(&["status", "tags"]), None);
        assert_eq!(k.keys(&["status", "gpus", "procs"]), None);
    }
}
