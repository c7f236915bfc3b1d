//! Properties over arbitrary input: nothing panics, inverses invert, and
//! applying the same configuration twice changes nothing the second time.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::test_support::NodeKeys;
use super::{
    ApplyOptions, create_merge_patch, json_merge_patch, json_patch, server_side_apply_with,
    strategic_merge_patch,
};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        (-1000.0f64..1000.0).prop_map(|f| json!(f)),
        "[a-c~/]{0,3}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-d]{1,2}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Drops `null` object members, which a merge patch cannot express.
fn without_null_members(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_null_members(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_null_members).collect()),
        other => other,
    }
}

fn pointer() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("0".to_owned()),
            Just("1".to_owned()),
            Just("-".to_owned()),
            Just("-1".to_owned()),
            Just("~0".to_owned()),
            Just("~1".to_owned()),
            Just("99999999999999999999".to_owned()),
        ],
        0..4,
    )
    .prop_map(|tokens| tokens.iter().map(|t| format!("/{t}")).collect())
}

fn operation() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just("add"),
            Just("remove"),
            Just("replace"),
            Just("move"),
            Just("copy"),
            Just("test"),
            Just("bogus"),
        ],
        pointer(),
        pointer(),
        prop::option::of(json_value()),
    )
        .prop_map(|(op, path, from, value)| {
            let mut m = Map::new();
            m.insert("op".into(), json!(op));
            m.insert("path".into(), json!(path));
            m.insert("from".into(), json!(from));
            if let Some(value) = value {
                m.insert("value".into(), value);
            }
            Value::Object(m)
        })
}

/// A node-shaped applied configuration: labels, taints with unique keys,
/// finalizers, a scalar and an atomic list.
fn node_config() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map("[a-c]", "[x-z]", 0..3),
        prop::collection::btree_map(
            ("[a-c]", prop_oneof![Just("NoSchedule"), Just("NoExecute")]),
            prop::option::of("[v-w]"),
            0..3,
        ),
        prop::collection::btree_set("[f-h]", 0..3),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::collection::vec("[0-9]", 0..2)),
    )
        .prop_map(|(labels, taints, finalizers, unschedulable, cidrs)| {
            let taints: Vec<Value> = taints
                .into_iter()
                .map(|((key, effect), value)| {
                    let mut t = json!({"key": key, "effect": effect});
                    if let Some(value) = value {
                        t["value"] = json!(value);
                    }
                    t
                })
                .collect();
            let mut spec = json!({"taints": taints});
            if let Some(u) = unschedulable {
                spec["unschedulable"] = json!(u);
            }
            if let Some(cidrs) = cidrs {
                spec["podCIDRs"] = json!(cidrs);
            }
            json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "n1", "labels": labels, "finalizers": finalizers},
                "spec": spec
            })
        })
}

fn apply_as(live: Option<&Value>, config: &Value, manager: &str, now: &str) -> Value {
    let opts = ApplyOptions {
        force: true,
        now: Some(now.to_owned()),
        ..ApplyOptions::new(manager)
    };
    match server_side_apply_with(live, config, &opts, &NodeKeys) {
        Ok(v) => v,
        Err(e) => panic!("forced apply of a valid configuration failed: {e}"),
    }
}

/// Whether `have` holds everything `want` says: members recursively, list
/// items by containment in some item.
fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(have), Value::Object(want)) => want
            .iter()
            .filter(|(_, v)| !v.is_null())
            .all(|(k, v)| have.get(k).is_some_and(|h| contains(h, v))),
        (Value::Array(have), Value::Array(want)) => {
            want.iter().all(|w| have.iter().any(|h| contains(h, w)))
        }
        _ => have == want,
    }
}

proptest! {
    // Failures are reported, not written into the source tree.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn merge_patch_never_panics(mut target in json_value(), patch in json_value()) {
        json_merge_patch(&mut target, &patch);
    }

    #[test]
    fn merge_patch_of_a_diff_yields_the_target(from in json_value(), to in json_value()) {
        let to = without_null_members(to);
        let patch = create_merge_patch(&from, &to);
        let mut got = from.clone();
        json_merge_patch(&mut got, &patch);
        prop_assert_eq!(got, to);
    }

    #[test]
    fn json_patch_never_panics(target in json_value(), ops in prop::collection::vec(operation(), 0..6)) {
        let _ = json_patch(&target, &Value::Array(ops));
    }

    #[test]
    fn json_patch_never_panics_on_garbage(target in json_value(), patch in json_value()) {
        let _ = json_patch(&target, &patch);
    }

    #[test]
    fn strategic_merge_patch_never_panics(target in json_value(), patch in json_value()) {
        let _ = strategic_merge_patch(&target, &patch, &NodeKeys);
    }

    #[test]
    fn applying_twice_is_idempotent(
        first in node_config(),
        other in node_config(),
        config in node_config(),
    ) {
        let live = apply_as(None, &first, "a", "2024-01-01T00:00:00Z");
        let live = apply_as(Some(&live), &other, "b", "2024-01-01T00:00:01Z");
        let once = apply_as(Some(&live), &config, "a", "2024-01-01T00:00:02Z");
        let twice = apply_as(Some(&once), &config, "a", "2024-01-01T00:00:03Z");
        prop_assert_eq!(twice, once);
    }

    #[test]
    fn forced_apply_sets_every_configured_value(
        first in node_config(),
        config in node_config(),
    ) {
        let live = apply_as(None, &first, "b", "2024-01-01T00:00:00Z");
        let got = apply_as(Some(&live), &config, "a", "2024-01-01T00:00:01Z");
        prop_assert!(contains(&got, &config), "{} does not hold {}", got, config);
    }
}
