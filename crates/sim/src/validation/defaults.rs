//! Schema `default`s, applied the way the server applies them.
//!
//! A default fills a field only where its parent object exists (a missing
//! `spec` stays missing even if `spec.mode` has a default), replaces a null
//! in a field that is not nullable, and is itself defaulted further: a
//! defaulted `{}` gets the defaults of its own properties. Map values and
//! list items are defaulted in place; nothing invents map entries or items.

use serde_json::Value;

use super::node::{Additional, Node};

pub(super) fn apply(n: &Node, value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, prop) in &n.properties {
                let Some(default) = &prop.default else {
                    continue;
                };
                let replace = match map.get(key) {
                    None => true,
                    Some(Value::Null) => !prop.nullable,
                    Some(_) => false,
                };
                if replace {
                    map.insert(key.clone(), default.clone());
                }
            }
            for (key, child) in map.iter_mut() {
                if let Some(prop) = n.properties.get(key) {
                    apply(prop, child);
                } else if let Additional::Schema(values) = &n.additional {
                    fill_null(values, child);
                    apply(values, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &n.items {
                for item in items {
                    fill_null(item_schema, item);
                    apply(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// A null where the schema forbids null takes the default, if there is one.
fn fill_null(n: &Node, value: &mut Value) {
    if value.is_null()
        && !n.nullable
        && let Some(default) = &n.default
    {
        *value = default.clone();
    }
}
