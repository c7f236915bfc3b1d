//! Kubernetes strategic merge patch
//! (`application/strategic-merge-patch+json`), for built-in kinds.
//!
//! Objects merge like a JSON merge patch. Lists merge by key when
//! [`ListKeys`] names keys for their path, merge as sets of primitives when
//! it names an empty key list, and are replaced otherwise. The directives
//! kubectl sends are honoured: `$patch` (replace, delete), `$retainKeys`,
//! `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>`.
//!
//! Element order follows the server: patch items in patch order (or in
//! `$setElementOrder` order), with items only the server has slotted back
//! next to the patch items they preceded in the live list. Items new to the
//! list therefore land before the server-only items that follow them.
//!
//! Values the patch introduces where the target had nothing are merged into
//! an empty value rather than copied, so directives and nulls inside them
//! never reach the stored object (the server gets the same effect by
//! decoding into typed structs). A merge key may be several fields; a patch
//! item matches a live item when every key field the patch item carries
//! is equal, so `{"key": "x", "$patch": "delete"}` removes every taint with
//! key `x` whatever its effect.

use serde_json::{Map, Value};

use super::{ListKeys, PatchError};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList";

pub(crate) fn strategic_merge_patch(
    target: &Value,
    patch: &Value,
    keys: &dyn ListKeys,
) -> Result<Value, PatchError> {
    let Value::Object(patch_map) = patch else {
        return Err(PatchError::Invalid(
            "strategic merge patch must be a json object".to_owned(),
        ));
    };
    let mut out = match target {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    merge_map(&mut out, patch_map, &mut Vec::new(), keys)?;
    Ok(Value::Object(out))
}

/// `.spec.taints`, for error messages.
fn at(names: &[&str]) -> String {
    if names.is_empty() {
        return "the object".to_owned();
    }
    names.iter().map(|n| format!(".{n}")).collect()
}

fn invalid(names: &[&str], msg: impl std::fmt::Display) -> PatchError {
    PatchError::Invalid(format!("{}: {msg}", at(names)))
}

/// The field a parallel-list directive (`$setElementOrder/<field>`) names.
fn directive_field<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    key.strip_prefix(prefix)?.strip_prefix('/')
}

fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(SET_ORDER)
        || key.starts_with(DELETE_PRIMITIVE)
}

fn merge_map<'p>(
    orig: &mut Map<String, Value>,
    patch: &'p Map<String, Value>,
    names: &mut Vec<&'p str>,
    keys: &dyn ListKeys,
) -> Result<(), PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        match directive.as_str() {
            // The rest of the patch map becomes the whole value.
            Some("replace") => orig.clear(),
            // The server leaves an empty map behind rather than removing
            // the field.
            Some("delete") => {
                orig.clear();
                return Ok(());
            }
            _ => {
                return Err(invalid(
                    names,
                    format!("unknown patch type {directive} in a map"),
                ));
            }
        }
    }

    for key in patch.keys() {
        let malformed = (key.starts_with(SET_ORDER) && directive_field(key, SET_ORDER).is_none())
            || (key.starts_with(DELETE_PRIMITIVE)
                && directive_field(key, DELETE_PRIMITIVE).is_none());
        if malformed {
            return Err(invalid(names, format!("directive {key:?} names no field")));
        }
    }

    if let Some(retain) = patch.get(RETAIN_KEYS) {
        apply_retain_keys(orig, patch, retain, names)?;
    }

    // Lists with an explicit order are merged and ordered together, before
    // anything else, as the server does.
    let mut ordered: Vec<&str> = Vec::new();
    for (key, order) in patch {
        let Some(field) = directive_field(key, SET_ORDER) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(invalid(names, format!("{key} must be a list")));
        };
        names.push(field);
        merge_ordered_list(orig, field, patch.get(field), order, names, keys)?;
        names.pop();
        ordered.push(field);
    }

    for (key, value) in patch {
        if is_directive_key(key) || ordered.contains(&key.as_str()) {
            continue;
        }
        names.push(key);
        merge_field(orig, key, value, names, keys)?;
        names.pop();
    }

    for (key, doomed) in patch {
        let Some(field) = directive_field(key, DELETE_PRIMITIVE) else {
            continue;
        };
        let Value::Array(doomed) = doomed else {
            return Err(invalid(names, format!("{key} must be a list")));
        };
        if let Some(Value::Array(items)) = orig.get_mut(field) {
            items.retain(|item| !doomed.contains(item));
        }
    }
    Ok(())
}

fn apply_retain_keys(
    orig: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: &Value,
    names: &[&str],
) -> Result<(), PatchError> {
    let bad = || invalid(names, "$retainKeys must be a list of field names");
    let Value::Array(list) = retain else {
        return Err(bad());
    };
    let mut allowed: Vec<&str> = Vec::with_capacity(list.len());
    for item in list {
        allowed.push(item.as_str().ok_or_else(bad)?);
    }
    for (key, value) in patch {
        if value.is_null() || is_directive_key(key) {
            continue;
        }
        if !allowed.contains(&key.as_str()) {
            return Err(invalid(
                names,
                format!("field {key:?} is in the patch but not in $retainKeys"),
            ));
        }
    }
    orig.retain(|key, _| allowed.contains(&key.as_str()));
    Ok(())
}

fn merge_field<'p>(
    orig: &mut Map<String, Value>,
    key: &str,
    value: &'p Value,
    names: &mut Vec<&'p str>,
    keys: &dyn ListKeys,
) -> Result<(), PatchError> {
    if value.is_null() {
        orig.remove(key);
        return Ok(());
    }
    match (orig.get_mut(key), value) {
        (Some(Value::Object(existing)), Value::Object(patch)) => {
            merge_map(existing, patch, names, keys)
        }
        (Some(Value::Array(existing)), Value::Array(patch)) => {
            merge_list(existing, patch, names, keys)
        }
        (Some(slot), _) => {
            *slot = fresh_value(value, names, keys)?;
            Ok(())
        }
        (None, _) => {
            let fresh = fresh_value(value, names, keys)?;
            orig.insert(key.to_owned(), fresh);
            Ok(())
        }
    }
}

/// A patch value for a place the target has nothing (of that type) at.
fn fresh_value<'p>(
    value: &'p Value,
    names: &mut Vec<&'p str>,
    keys: &dyn ListKeys,
) -> Result<Value, PatchError> {
    match value {
        Value::Object(patch) => {
            let mut out = Map::new();
            merge_map(&mut out, patch, names, keys)?;
            Ok(Value::Object(out))
        }
        Value::Array(patch) => {
            let mut out = Vec::new();
            merge_list(&mut out, patch, names, keys)?;
            Ok(Value::Array(out))
        }
        other => Ok(other.clone()),
    }
}

fn merge_list<'p>(
    orig: &mut Vec<Value>,
    patch: &'p [Value],
    names: &mut Vec<&'p str>,
    keys: &dyn ListKeys,
) -> Result<(), PatchError> {
    match keys.keys(names) {
        None => {
            *orig = patch.to_vec();
            Ok(())
        }
        Some(merge_keys) if merge_keys.is_empty() => merge_primitive_list(orig, patch, names),
        Some(merge_keys) => merge_keyed_list(orig, patch, &merge_keys, names, keys),
    }
}

/// A list item on its way to the merged list: where it stood in the live
/// list and which patch item (or order entry) placed it.
struct Placed {
    value: Value,
    live_pos: Option<usize>,
    patch_pos: Option<usize>,
}

/// Orders merged items the way the server does: items the patch placed
/// keep patch order; server-only items keep live order and go in front of
/// a patch item only when both were in the live list and the server-only
/// item came first there.
fn interleave(items: Vec<Placed>) -> Vec<Value> {
    let (mut placed, server_only): (Vec<Placed>, Vec<Placed>) =
        items.into_iter().partition(|p| p.patch_pos.is_some());
    placed.sort_by_key(|p| p.patch_pos);
    let mut out = Vec::with_capacity(placed.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = placed.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!((l.live_pos, r.live_pos), (Some(a), Some(b)) if a < b),
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some(item) = next {
            out.push(item.value);
        }
    }
    out
}

fn merge_primitive_list(
    orig: &mut Vec<Value>,
    patch: &[Value],
    names: &[&str],
) -> Result<(), PatchError> {
    if orig
        .iter()
        .chain(patch)
        .any(|v| v.is_object() || v.is_array())
    {
        return Err(invalid(
            names,
            "a list merged as a set may hold only primitive values",
        ));
    }
    let mut items: Vec<Placed> = Vec::with_capacity(orig.len() + patch.len());
    for (i, value) in std::mem::take(orig).into_iter().enumerate() {
        if !items.iter().any(|p| p.value == value) {
            items.push(Placed {
                value,
                live_pos: Some(i),
                patch_pos: None,
            });
        }
    }
    for (j, value) in patch.iter().enumerate() {
        match items.iter_mut().find(|p| p.value == *value) {
            Some(existing) => {
                existing.patch_pos.get_or_insert(j);
            }
            None => items.push(Placed {
                value: value.clone(),
                live_pos: None,
                patch_pos: Some(j),
            }),
        }
    }
    *orig = interleave(items);
    Ok(())
}

/// Whether `item` is the one `pattern` (a patch item or order entry) names:
/// every key field the pattern carries matches, and it carries at least one.
fn matches_pattern(pattern: &Map<String, Value>, item: &Value, merge_keys: &[String]) -> bool {
    let Value::Object(item) = item else {
        return false;
    };
    let mut any = false;
    for key in merge_keys {
        if let Some(want) = pattern.get(key) {
            if item.get(key) != Some(want) {
                return false;
            }
            any = true;
        }
    }
    any
}

fn has_merge_key(item: &Map<String, Value>, merge_keys: &[String]) -> bool {
    merge_keys.iter().any(|k| item.contains_key(k))
}

fn missing_key_error(
    names: &[&str],
    item: &Map<String, Value>,
    merge_keys: &[String],
) -> PatchError {
    invalid(
        names,
        format!(
            "map {} does not contain declared merge key {}",
            Value::Object(item.clone()),
            merge_keys.join(",")
        ),
    )
}

fn merge_keyed_list<'p>(
    orig: &mut Vec<Value>,
    patch: &'p [Value],
    merge_keys: &[String],
    names: &mut Vec<&'p str>,
    keys: &dyn ListKeys,
) -> Result<(), PatchError> {
    if orig.iter().any(|v| !v.is_object()) {
        return Err(invalid(
            names,
            "live list item is not an object, cannot merge by key",
        ));
    }
    let mut replace = false;
    let mut regular: Vec<&'p Map<String, Value>> = Vec::with_capacity(patch.len());
    for item in patch {
        let Value::Object(item) = item else {
            return Err(invalid(
                names,
                "patch list item is not an object, cannot merge by key",
            ));
        };
        let Some(directive) = item.get(DIRECTIVE) else {
            if !has_merge_key(item, merge_keys) {
                return Err(missing_key_error(names, item, merge_keys));
            }
            regular.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                if !has_merge_key(item, merge_keys) {
                    return Err(missing_key_error(names, item, merge_keys));
                }
                orig.retain(|live| !matches_pattern(item, live, merge_keys));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(invalid(
                    names,
                    "merging lists cannot yet be specified in the patch",
                ));
            }
            _ => {
                return Err(invalid(
                    names,
                    format!("unknown patch type {directive} in a list"),
                ));
            }
        }
    }

    if replace {
        let mut out = Vec::with_capacity(regular.len());
        for item in regular {
            let mut fresh = Map::new();
            merge_map(&mut fresh, item, names, keys)?;
            out.push(Value::Object(fresh));
        }
        *orig = out;
        return Ok(());
    }

    let mut items: Vec<Placed> = std::mem::take(orig)
        .into_iter()
        .enumerate()
        .map(|(i, value)| Placed {
            value,
            live_pos: Some(i),
            patch_pos: None,
        })
        .collect();
    for (j, patch_item) in regular.into_iter().enumerate() {
        match items
            .iter_mut()
            .find(|p| matches_pattern(patch_item, &p.value, merge_keys))
        {
            Some(existing) => {
                if let Value::Object(live) = &mut existing.value {
                    merge_map(live, patch_item, names, keys)?;
                }
                existing.patch_pos.get_or_insert(j);
            }
            None => {
                let mut fresh = Map::new();
                merge_map(&mut fresh, patch_item, names, keys)?;
                items.push(Placed {
                    value: Value::Object(fresh),
                    live_pos: None,
                    patch_pos: Some(j),
                });
            }
        }
    }
    *orig = interleave(items);
    Ok(())
}

/// What identifies a list item for ordering: its key fields for keyed
/// lists, its whole value otherwise.
fn identity(item: &Value, merge_keys: &[String]) -> Value {
    match item {
        Value::Object(fields) if !merge_keys.is_empty() => Value::Array(
            merge_keys
                .iter()
                .map(|k| fields.get(k).cloned().unwrap_or(Value::Null))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn order_entry_matches(entry: &Value, item: &Value, merge_keys: &[String]) -> bool {
    match entry {
        Value::Object(pattern) if !merge_keys.is_empty() => {
            matches_pattern(pattern, item, merge_keys)
        }
        other => other == item,
    }
}

fn merge_ordered_list<'p>(
    orig: &mut Map<String, Value>,
    field: &'p str,
    patch_list: Option<&'p Value>,
    order: &'p [Value],
    names: &mut Vec<&'p str>,
    keys: &dyn ListKeys,
) -> Result<(), PatchError> {
    let merge_keys = keys.keys(names).unwrap_or_default();
    let live = match orig.get_mut(field) {
        None => None,
        Some(Value::Array(items)) => Some(std::mem::take(items)),
        Some(_) => {
            return Err(invalid(
                names,
                "$setElementOrder names a field that is not a list",
            ));
        }
    };
    let patch_items = match patch_list {
        None => None,
        Some(Value::Array(items)) => Some(items.as_slice()),
        Some(_) => {
            return Err(invalid(
                names,
                "$setElementOrder names a field the patch does not set to a list",
            ));
        }
    };
    if let Some(patch_items) = patch_items {
        check_order(patch_items, order, &merge_keys, names)?;
    }
    let live_ids: Vec<Value> = live
        .iter()
        .flatten()
        .map(|item| identity(item, &merge_keys))
        .collect();
    let merged = match (live, patch_items) {
        (None, None) => return Ok(()),
        (Some(live), None) => live,
        (live, Some(patch_items)) => {
            let mut items = live.unwrap_or_default();
            merge_list(&mut items, patch_items, names, keys)?;
            items
        }
    };
    let placed = merged
        .into_iter()
        .map(|value| {
            let id = identity(&value, &merge_keys);
            Placed {
                live_pos: live_ids.iter().position(|live| *live == id),
                patch_pos: order
                    .iter()
                    .position(|entry| order_entry_matches(entry, &value, &merge_keys)),
                value,
            }
        })
        .collect();
    orig.insert(field.to_owned(), Value::Array(interleave(placed)));
    Ok(())
}

/// The patch list must list its items in the same relative order as the
/// `$setElementOrder` list (deletions and other directives aside).
fn check_order(
    patch_items: &[Value],
    order: &[Value],
    merge_keys: &[String],
    names: &[&str],
) -> Result<(), PatchError> {
    let same = |a: &Value, b: &Value| match (a, b) {
        (Value::Object(a), Value::Object(b)) if !merge_keys.is_empty() => {
            merge_keys.iter().all(|k| a.get(k) == b.get(k))
        }
        _ => a == b,
    };
    let mut entries = order.iter();
    for item in patch_items {
        if item.get(DIRECTIVE).is_some() {
            continue;
        }
        if !entries.any(|entry| same(item, entry)) {
            return Err(invalid(
                names,
                "the order in the patch list does not match the $setElementOrder list",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::NodeKeys;
    use super::*;

    fn node() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": "gpu-1",
                "labels": {"a": "1", "b": "2"},
                "finalizers": ["x", "y"]
            },
            "spec": {
                "taints": [
                    {"key": "gpu", "effect": "NoSchedule", "value": "true"},
                    {"key": "gpu", "effect": "NoExecute"},
                    {"key": "maint", "effect": "NoSchedule"}
                ],
                "podCIDRs": ["10.0.0.0/24"]
            },
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "MemoryPressure", "status": "False"}
                ]
            }
        })
    }

    /// Applies `patch` to `node()` and returns the result.
    fn patched(patch: Value) -> Result<Value, PatchError> {
        strategic_merge_patch(&node(), &patch, &NodeKeys)
    }

    #[test]
    fn node_patches() {
        let cases: Vec<(&str, Value, Value, Value)> = vec![
            (
                "label added, label deleted with null",
                json!({"metadata": {"labels": {"c": "3", "a": null}}}),
                json!(["metadata", "labels"]),
                json!({"b": "2", "c": "3"}),
            ),
            (
                "condition merged by type, others kept in place",
                json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "GpuLost"}]}}),
                json!(["status", "conditions"]),
                json!([
                    {"type": "Ready", "status": "False", "reason": "GpuLost"},
                    {"type": "MemoryPressure", "status": "False"}
                ]),
            ),
            (
                "new condition goes before server-only items",
                json!({"status": {"conditions": [{"type": "GpuHealthy", "status": "True"}]}}),
                json!(["status", "conditions"]),
                json!([
                    {"type": "GpuHealthy", "status": "True"},
                    {"type": "Ready", "status": "True"},
                    {"type": "MemoryPressure", "status": "False"}
                ]),
            ),
            (
                "taint matched on both keys",
                json!({"spec": {"taints": [{"key": "gpu", "effect": "NoExecute", "value": "bad"}]}}),
                json!(["spec", "taints"]),
                json!([
                    {"key": "gpu", "effect": "NoSchedule", "value": "true"},
                    {"key": "gpu", "effect": "NoExecute", "value": "bad"},
                    {"key": "maint", "effect": "NoSchedule"}
                ]),
            ),
            (
                "taint delete directive with both keys removes one",
                json!({"spec": {"taints": [{"key": "gpu", "effect": "NoSchedule", "$patch": "delete"}]}}),
                json!(["spec", "taints"]),
                json!([
                    {"key": "gpu", "effect": "NoExecute"},
                    {"key": "maint", "effect": "NoSchedule"}
                ]),
            ),
            (
                "taint delete directive with one key removes every match",
                json!({"spec": {"taints": [{"key": "gpu", "$patch": "delete"}]}}),
                json!(["spec", "taints"]),
                json!([{"key": "maint", "effect": "NoSchedule"}]),
            ),
            (
                "replace directive in a list",
                json!({"spec": {"taints": [{"$patch": "replace"}, {"key": "new", "effect": "NoSchedule", "junk": null}]}}),
                json!(["spec", "taints"]),
                json!([{"key": "new", "effect": "NoSchedule"}]),
            ),
            (
                "replace directive in a map",
                json!({"metadata": {"labels": {"$patch": "replace", "only": "me"}}}),
                json!(["metadata", "labels"]),
                json!({"only": "me"}),
            ),
            (
                "delete directive in a map leaves it empty",
                json!({"metadata": {"labels": {"$patch": "delete"}}}),
                json!(["metadata", "labels"]),
                json!({}),
            ),
            (
                "list without keys is replaced",
                json!({"spec": {"podCIDRs": ["10.1.0.0/24"]}}),
                json!(["spec", "podCIDRs"]),
                json!(["10.1.0.0/24"]),
            ),
            (
                "primitive set list merges without duplicates, in patch order",
                json!({"metadata": {"finalizers": ["z", "x"]}}),
                json!(["metadata", "finalizers"]),
                json!(["z", "x", "y"]),
            ),
            (
                "delete from primitive list",
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
                json!(["metadata", "finalizers"]),
                json!(["y"]),
            ),
            (
                "set element order reorders and drops nothing",
                json!({"status": {"$setElementOrder/conditions": [{"type": "MemoryPressure"}, {"type": "Ready"}]}}),
                json!(["status", "conditions"]),
                json!([
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True"}
                ]),
            ),
            (
                "set element order with a patch list, as kubectl sends it",
                json!({"metadata": {
                    "$setElementOrder/finalizers": ["y", "w"],
                    "$deleteFromPrimitiveList/finalizers": ["x"],
                    "finalizers": ["w"]
                }}),
                json!(["metadata", "finalizers"]),
                json!(["y", "w"]),
            ),
            (
                "retain keys clears unlisted fields",
                json!({"spec": {"$retainKeys": ["taints"], "taints": [{"key": "maint", "effect": "NoSchedule", "value": "soon"}]}}),
                json!(["spec"]),
                json!({"taints": [
                    {"key": "gpu", "effect": "NoSchedule", "value": "true"},
                    {"key": "gpu", "effect": "NoExecute"},
                    {"key": "maint", "effect": "NoSchedule", "value": "soon"}
                ]}),
            ),
            (
                "directives and nulls inside new values never reach the object",
                json!({"spec": {"unschedulable": true, "configSource": {"$patch": "replace", "a": {"b": null, "c": 1}}}}),
                json!(["spec", "configSource"]),
                json!({"a": {"c": 1}}),
            ),
        ];
        for (desc, patch, path, want) in cases {
            let got = match patched(patch) {
                Ok(v) => v,
                Err(e) => panic!("{desc}: unexpected error {e}"),
            };
            let mut at = &got;
            if let Value::Array(path) = &path {
                for step in path {
                    at = &at[step.as_str().unwrap_or_default()];
                }
            }
            assert_eq!(at, &want, "{desc}: got {got}");
        }
    }

    #[test]
    fn untouched_parts_survive() {
        let got = match patched(json!({"metadata": {"labels": {"c": "3"}}})) {
            Ok(v) => v,
            Err(e) => panic!("unexpected error {e}"),
        };
        let mut want = node();
        want["metadata"]["labels"]["c"] = json!("3");
        assert_eq!(got, want);
    }

    #[test]
    fn invalid_patches() {
        let cases = [
            (
                "patch is not an object",
                json!(["a"]),
                "strategic merge patch must be a json object",
            ),
            (
                "keyed item without its key",
                json!({"spec": {"taints": [{"value": "v"}]}}),
                ".spec.taints: map {\"value\":\"v\"} does not contain declared merge key key,effect",
            ),
            (
                "unknown list directive",
                json!({"spec": {"taints": [{"key": "a", "$patch": "explode"}]}}),
                ".spec.taints: unknown patch type \"explode\" in a list",
            ),
            (
                "merge directive in a list",
                json!({"spec": {"taints": [{"key": "a", "$patch": "merge"}]}}),
                ".spec.taints: merging lists cannot yet be specified in the patch",
            ),
            (
                "unknown map directive",
                json!({"metadata": {"$patch": "explode"}}),
                ".metadata: unknown patch type \"explode\" in a map",
            ),
            (
                "retain keys disagrees with the patch",
                json!({"spec": {"$retainKeys": ["a"], "b": 1}}),
                ".spec: field \"b\" is in the patch but not in $retainKeys",
            ),
            (
                "order disagrees with the patch list",
                json!({"status": {
                    "$setElementOrder/conditions": [{"type": "Ready"}, {"type": "MemoryPressure"}],
                    "conditions": [{"type": "MemoryPressure", "status": "True"}, {"type": "Ready", "status": "True"}]
                }}),
                ".status.conditions: the order in the patch list does not match the $setElementOrder list",
            ),
            (
                "directive without a field",
                json!({"metadata": {"$deleteFromPrimitiveList": ["x"]}}),
                ".metadata: directive \"$deleteFromPrimitiveList\" names no field",
            ),
            (
                "objects in a set list",
                json!({"metadata": {"finalizers": [{"a": 1}]}}),
                ".metadata.finalizers: a list merged as a set may hold only primitive values",
            ),
        ];
        for (desc, patch, want) in cases {
            match patched(patch) {
                Ok(v) => panic!("{desc}: expected an error, got {v}"),
                Err(e) => {
                    assert_eq!(e.kind(), "invalid", "{desc}");
                    assert_eq!(e.to_string(), format!("invalid patch: {want}"), "{desc}");
                }
            }
        }
    }

    #[test]
    fn containers_merge_by_name_with_nested_lists() {
        let deployment = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
             "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "side:1"}
        ], "volumes": [{"name": "data", "emptyDir": {}}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "3"}, {"name": "A", "$patch": "delete"}],
             "ports": [{"containerPort": 443}]}
        ], "volumes": [{"name": "cache", "emptyDir": {}}]}}}});
        let got = match strategic_merge_patch(&deployment, &patch, &NodeKeys) {
            Ok(v) => v,
            Err(e) => panic!("unexpected error {e}"),
        };
        let want = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "3"}],
             "ports": [{"containerPort": 443}, {"containerPort": 80}]},
            {"name": "sidecar", "image": "side:1"}
        ], "volumes": [{"name": "cache", "emptyDir": {}}, {"name": "data", "emptyDir": {}}]}}}});
        assert_eq!(got, want);
    }
}
