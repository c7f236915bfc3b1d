//! Dropping what the schema does not know, the way the server does on every
//! write before validating.
//!
//! Unknown fields go unless an `x-kubernetes-preserve-unknown-fields` node
//! keeps them; the paths of what went are returned so the caller can warn
//! (`fieldValidation=Warn`) or refuse (`Strict`). `apiVersion`, `kind` and
//! `metadata` of the object and of embedded resources are never touched:
//! the server handles those separately. After that, nulls in fields that are
//! neither nullable nor defaulted are dropped without a report, as the
//! server does, so that `field: null` reads as "not set".

use serde_json::{Map, Value};

use super::node::{Additional, Node};
use super::render::{self, Seg};

/// The path down to the value being pruned. Owned, because the walk holds
/// the object mutably and cannot also lend out its keys.
enum Step {
    Key(String),
    Index(usize),
}

/// Fields every resource (and every embedded resource) keeps.
const RESOURCE_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

pub(super) fn prune(root: &Node, obj: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    let mut path = Vec::new();
    prune_node(Some(root), obj, true, &mut path, &mut pruned);
    drop_nulls(root, obj, true);
    pruned
}

/// `schema` is `None` below a node that allows any value without describing
/// it, where the server prunes every object field it meets.
fn prune_node(
    schema: Option<&Node>,
    value: &mut Value,
    resource_root: bool,
    path: &mut Vec<Step>,
    pruned: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => prune_object(schema, map, resource_root, path, pruned),
        Value::Array(items) => {
            let item_schema = match schema {
                Some(n) if n.preserve_unknown && n.items.is_none() => return,
                Some(n) => n.items.as_deref(),
                None => None,
            };
            for (i, item) in items.iter_mut().enumerate() {
                path.push(Step::Index(i));
                prune_node(item_schema, item, false, path, pruned);
                path.pop();
            }
        }
        _ => {}
    }
}

fn prune_object(
    schema: Option<&Node>,
    map: &mut Map<String, Value>,
    resource_root: bool,
    path: &mut Vec<Step>,
    pruned: &mut Vec<String>,
) {
    let keeps_resource_fields = resource_root || schema.is_some_and(|n| n.embedded);
    let mut doomed = Vec::new();
    for (key, child) in map.iter_mut() {
        if keeps_resource_fields && RESOURCE_FIELDS.contains(&key.as_str()) {
            continue;
        }
        let Some(n) = schema else {
            pruned.push(joined(path, key));
            doomed.push(key.clone());
            continue;
        };
        let child_schema = if let Some(prop) = n.properties.get(key) {
            Some(prop)
        } else {
            match &n.additional {
                Additional::Schema(values) => Some(values.as_ref()),
                // A map of anything: its values are kept as they are.
                Additional::Bool(true) => continue,
                Additional::Bool(false) | Additional::Absent => {
                    if !n.preserve_unknown {
                        pruned.push(joined(path, key));
                        doomed.push(key.clone());
                    }
                    continue;
                }
            }
        };
        path.push(Step::Key(key.clone()));
        prune_node(child_schema, child, false, path, pruned);
        path.pop();
    }
    for key in doomed {
        map.remove(&key);
    }
}

/// Renders a pruned path: keys dotted, list indexes bracketed.
fn joined(path: &[Step], key: &str) -> String {
    let segs: Vec<Seg<'_>> = path
        .iter()
        .map(|step| match step {
            Step::Key(k) => Seg::Prop(k),
            Step::Index(i) => Seg::Index(*i),
        })
        .collect();
    render::pruned_path(&segs, key)
}

fn drop_nulls(n: &Node, value: &mut Value, resource_root: bool) {
    match value {
        Value::Object(map) => {
            map.retain(|key, child| {
                if resource_root && RESOURCE_FIELDS.contains(&key.as_str()) {
                    return true;
                }
                let child_schema = match n.properties.get(key) {
                    Some(prop) => prop,
                    None => match &n.additional {
                        Additional::Schema(values) => values,
                        _ => return true,
                    },
                };
                if child.is_null() {
                    return child_schema.nullable || child_schema.default.is_some();
                }
                drop_nulls(child_schema, child, false);
                true
            });
        }
        Value::Array(items) => {
            if let Some(item_schema) = &n.items {
                for item in items {
                    drop_nulls(item_schema, item, false);
                }
            }
        }
        _ => {}
    }
}
