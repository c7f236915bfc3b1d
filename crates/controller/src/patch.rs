//! Turning "the node as it is" and "the node as the plan wants it" into the
//! smallest patches, and enforcing the ownership rule on the way.
//!
//! The planner hands over a whole desired Node; this module is the last line
//! of defence for the safety rules: whatever that Node says, a patch only
//! ever carries `plumbline.dev/` labels and annotations, taints whose key is
//! `plumbline.dev/` (foreign taints are copied from the freshest node, in
//! their order), `spec.unschedulable`, and Plumbline's own condition. Every
//! patch carries the `resourceVersion` it was computed from, so a node that
//! changed in between is answered with 409 and planned again.

use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use plumbline_api::keys;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

fn owned(key: &str) -> bool {
    key.starts_with(keys::PREFIX)
}

fn map_diff(
    before: Option<&BTreeMap<String, String>>,
    after: Option<&BTreeMap<String, String>>,
) -> Map<String, Value> {
    let empty = BTreeMap::new();
    let before = before.unwrap_or(&empty);
    let after = after.unwrap_or(&empty);
    let mut out = Map::new();
    for (k, v) in after {
        if owned(k) && before.get(k) != Some(v) {
            out.insert(k.clone(), Value::String(v.clone()));
        }
    }
    for k in before.keys() {
        if owned(k) && !after.contains_key(k) {
            out.insert(k.clone(), Value::Null);
        }
    }
    out
}

/// The taint list to write: every foreign taint of `before`, untouched and
/// in place, then the Plumbline taints of `after`.
fn merged_taints(before: &[Taint], after: &[Taint]) -> Vec<Taint> {
    let mut out: Vec<Taint> = before.iter().filter(|t| !owned(&t.key)).cloned().collect();
    out.extend(after.iter().filter(|t| owned(&t.key)).cloned());
    out
}

fn taints(n: &Node) -> &[Taint] {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

fn unschedulable(n: &Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

/// JSON merge patch for the Node object (labels, annotations, taints,
/// `spec.unschedulable`), or `None` when nothing Plumbline owns differs.
pub(crate) fn node_patch(before: &Node, after: &Node) -> Option<Value> {
    let labels = map_diff(
        before.metadata.labels.as_ref(),
        after.metadata.labels.as_ref(),
    );
    let annotations = map_diff(
        before.metadata.annotations.as_ref(),
        after.metadata.annotations.as_ref(),
    );
    let new_taints = merged_taints(taints(before), taints(after));
    let taints_changed = new_taints.as_slice() != taints(before);
    let cordon_changed = unschedulable(before) != unschedulable(after);
    if labels.is_empty() && annotations.is_empty() && !taints_changed && !cordon_changed {
        return None;
    }
    let mut metadata = Map::new();
    metadata.insert(
        "resourceVersion".into(),
        json!(before.metadata.resource_version),
    );
    if !labels.is_empty() {
        metadata.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        metadata.insert("annotations".into(), Value::Object(annotations));
    }
    let mut spec = Map::new();
    if taints_changed {
        // A merge patch replaces lists whole; the list is rebuilt from the
        // freshest node above, and the resourceVersion guarantees it is.
        spec.insert(
            "taints".into(),
            if new_taints.is_empty() {
                Value::Null
            } else {
                serde_json::to_value(&new_taints).unwrap_or(Value::Null)
            },
        );
    }
    if cordon_changed {
        spec.insert(
            "unschedulable".into(),
            if unschedulable(after) {
                Value::Bool(true)
            } else {
                Value::Null
            },
        );
    }
    let mut patch = Map::new();
    patch.insert("metadata".into(), Value::Object(metadata));
    if !spec.is_empty() {
        patch.insert("spec".into(), Value::Object(spec));
    }
    Some(Value::Object(patch))
}

fn our_condition(n: &Node) -> Option<&NodeCondition> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == keys::conditions::GPU_STACK_COMPLIANT)
}

/// Strategic merge patch for `/status` setting or removing Plumbline's
/// condition, or `None` when it is already as wanted. Conditions merge by
/// `type`, so the kubelet's conditions are never sent and never lost.
pub(crate) fn node_status_patch(before: &Node, after: &Node) -> Option<Value> {
    let (old, new) = (our_condition(before), our_condition(after));
    if old == new {
        return None;
    }
    let entry = match new {
        Some(c) => serde_json::to_value(c).ok()?,
        None => json!({"type": keys::conditions::GPU_STACK_COMPLIANT, "$patch": "delete"}),
    };
    Some(json!({
        "metadata": {"resourceVersion": before.metadata.resource_version},
        "status": {"conditions": [entry]},
    }))
}

/// RFC 7386 merge patch taking `old` to `new` (objects only; anything else
/// is replaced whole). `None` when they are equal.
pub(crate) fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(d) = merge_diff(ov, nv) {
                            out.insert(k.clone(), d);
                        }
                    }
                    None => {
                        out.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            Some(Value::Object(out))
        }
        _ => Some(new.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSpec;
    use kube::api::ObjectMeta;
    use pretty_assertions::assert_eq;

    fn node(labels: &[(&str, &str)], taints: &[(&str, &str)], cordoned: bool) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                resource_version: Some("7".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(
                    taints
                        .iter()
                        .map(|(k, e)| Taint {
                            key: k.to_string(),
                            effect: e.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                unschedulable: cordoned.then_some(true),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn an_unchanged_node_needs_no_patch() {
        let n = node(
            &[("a", "1"), ("plumbline.dev/compliant", "true")],
            &[],
            false,
        );
        assert_eq!(node_patch(&n, &n.clone()), None);
    }

    #[test]
    fn only_owned_labels_are_patched_and_foreign_changes_are_ignored() {
        let before = node(
            &[("team", "a"), ("plumbline.dev/compliant", "true")],
            &[],
            false,
        );
        // A desired node that (wrongly) drops a foreign label and changes ours.
        let after = node(&[("plumbline.dev/compliant", "false")], &[], false);
        assert_eq!(
            node_patch(&before, &after),
            Some(
                json!({"metadata": {"resourceVersion": "7", "labels": {"plumbline.dev/compliant": "false"}}})
            )
        );
    }

    #[test]
    fn foreign_taints_stay_in_place_when_the_drift_taint_is_added() {
        let before = node(&[], &[("gpu", "NoSchedule")], false);
        let after = node(&[], &[("plumbline.dev/drift", "NoSchedule")], true);
        assert_eq!(
            node_patch(&before, &after),
            Some(json!({
                "metadata": {"resourceVersion": "7"},
                "spec": {
                    "taints": [
                        {"key": "gpu", "effect": "NoSchedule"},
                        {"key": "plumbline.dev/drift", "effect": "NoSchedule"},
                    ],
                    "unschedulable": true,
                },
            }))
        );
    }

    #[test]
    fn removing_the_last_taint_and_cordon_sends_nulls() {
        let before = node(&[], &[("plumbline.dev/drift", "NoSchedule")], true);
        let after = node(&[], &[], false);
        assert_eq!(
            node_patch(&before, &after),
            Some(json!({
                "metadata": {"resourceVersion": "7"},
                "spec": {"taints": null, "unschedulable": null},
            }))
        );
    }

    #[test]
    fn merge_diff_is_minimal_and_nulls_removed_keys() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        let new = json!({"a": 1, "b": {"c": 2}, "e": [1, 2]});
        assert_eq!(
            merge_diff(&old, &new),
            Some(json!({"b": {"d": null}, "e": [1, 2]}))
        );
        assert_eq!(merge_diff(&old, &old), None);
    }
}
