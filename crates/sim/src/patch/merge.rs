//! RFC 7386 JSON merge patch (`application/merge-patch+json`) and the
//! inverse: computing the merge patch between two documents.

use serde_json::{Map, Value};

pub(crate) fn json_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        // A non-object patch replaces the target wholesale.
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return;
    };
    for (key, value) in patch_map {
        if value.is_null() {
            target_map.remove(key);
        } else if let Some(existing) = target_map.get_mut(key) {
            json_merge_patch(existing, value);
        } else {
            // Recurse into a fresh value rather than cloning, so that
            // nested nulls in the patch are dropped instead of stored.
            let mut fresh = Value::Null;
            json_merge_patch(&mut fresh, value);
            target_map.insert(key.clone(), fresh);
        }
    }
}

pub(crate) fn create_merge_patch(from: &Value, to: &Value) -> Value {
    let (Value::Object(from_map), Value::Object(to_map)) = (from, to) else {
        return to.clone();
    };
    let mut patch = Map::new();
    for key in from_map.keys() {
        if !to_map.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    for (key, to_value) in to_map {
        match from_map.get(key) {
            Some(from_value) if from_value == to_value => {}
            Some(from_value @ Value::Object(_)) if to_value.is_object() => {
                patch.insert(key.clone(), create_merge_patch(from_value, to_value));
            }
            _ => {
                patch.insert(key.clone(), to_value.clone());
            }
        }
    }
    Value::Object(patch)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The examples of RFC 7386 appendix A, as data.
    #[test]
    fn rfc7386_appendix_a() {
        let cases = [
            (
                "replace a member",
                json!({"a": "b"}),
                json!({"a": "c"}),
                json!({"a": "c"}),
            ),
            (
                "add a member",
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (
                "null removes",
                json!({"a": "b"}),
                json!({"a": null}),
                json!({}),
            ),
            (
                "null removes one of two",
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (
                "array replaced by string",
                json!({"a": ["b"]}),
                json!({"a": "c"}),
                json!({"a": "c"}),
            ),
            (
                "string replaced by array",
                json!({"a": "c"}),
                json!({"a": ["b"]}),
                json!({"a": ["b"]}),
            ),
            (
                "nested merge with delete",
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                "arrays are replaced, not merged",
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (
                "top-level array replaced",
                json!(["a", "b"]),
                json!(["c", "d"]),
                json!(["c", "d"]),
            ),
            (
                "array target replaced by object",
                json!({"a": "b"}),
                json!(["c"]),
                json!(["c"]),
            ),
            (
                "null patch replaces",
                json!({"a": "foo"}),
                json!(null),
                json!(null),
            ),
            (
                "string patch replaces",
                json!({"a": "foo"}),
                json!("bar"),
                json!("bar"),
            ),
            (
                "existing null member untouched",
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                "array target becomes object",
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                "nested nulls in new member dropped",
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (desc, target, patch, want) in cases {
            let mut got = target.clone();
            json_merge_patch(&mut got, &patch);
            assert_eq!(got, want, "{desc}");
        }
    }

    #[test]
    fn create_merge_patch_cases() {
        let cases = [
            (
                "identical objects",
                json!({"a": 1}),
                json!({"a": 1}),
                json!({}),
            ),
            (
                "removed member",
                json!({"a": 1, "b": 2}),
                json!({"a": 1}),
                json!({"b": null}),
            ),
            (
                "changed nested member",
                json!({"a": {"b": 1, "c": 2}}),
                json!({"a": {"b": 3, "c": 2}}),
                json!({"a": {"b": 3}}),
            ),
            (
                "array changed",
                json!({"a": [1, 2]}),
                json!({"a": [2]}),
                json!({"a": [2]}),
            ),
            (
                "object to scalar",
                json!({"a": {"b": 1}}),
                json!({"a": 5}),
                json!({"a": 5}),
            ),
            ("non-object target", json!({"a": 1}), json!([1]), json!([1])),
        ];
        for (desc, from, to, want) in cases {
            let patch = create_merge_patch(&from, &to);
            assert_eq!(patch, want, "{desc}: patch");
            let mut applied = from.clone();
            json_merge_patch(&mut applied, &patch);
            assert_eq!(applied, to, "{desc}: round trip");
        }
    }
}
