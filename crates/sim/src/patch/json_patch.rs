//! RFC 6902 JSON patch (`application/json-patch+json`), with the quirks of
//! the JSON patch library the API server links (evanphx/json-patch v4):
//!
//! - a `test` of a missing object member against `null` succeeds;
//! - `replace` of a missing object member adds it;
//! - `add` and `remove` take negative array indices, counted from the end;
//! - array indices are parsed leniently (`01` is index 1);
//! - no operation may target the document root;
//! - at most 10000 operations per patch.
//!
//! Operations apply to a private copy, so a failing patch changes nothing.

use serde_json::Value;

use super::PatchError;

/// The API server refuses longer patches before applying any operation.
const MAX_OPERATIONS: usize = 10_000;

pub(crate) fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(ops) = patch else {
        return Err(PatchError::Invalid(
            "json patch must be an array of operations".to_owned(),
        ));
    };
    if ops.len() > MAX_OPERATIONS {
        return Err(PatchError::Invalid(format!(
            "json patch has {} operations, more than the allowed {MAX_OPERATIONS}",
            ops.len()
        )));
    }
    let mut doc = target.clone();
    for (index, op) in ops.iter().enumerate() {
        apply_operation(&mut doc, index, op)?;
    }
    Ok(doc)
}

/// What went wrong in one operation, before the operation's index, kind and
/// path are attached.
enum OpFailure {
    Invalid(String),
    TestFailed,
}

fn invalid<T>(msg: impl Into<String>) -> Result<T, OpFailure> {
    Err(OpFailure::Invalid(msg.into()))
}

fn apply_operation(doc: &mut Value, index: usize, op: &Value) -> Result<(), PatchError> {
    let Value::Object(fields) = op else {
        return Err(PatchError::Invalid(format!(
            "operation {index}: not a json object"
        )));
    };
    let kind = fields.get("op").and_then(Value::as_str).unwrap_or("");
    let Some(path) = fields.get("path").and_then(Value::as_str) else {
        return Err(PatchError::Invalid(format!(
            "operation {index} ({kind}): missing or non-string \"path\""
        )));
    };
    let located = |failure: OpFailure| match failure {
        OpFailure::Invalid(msg) => {
            PatchError::Invalid(format!("operation {index} ({kind}) at \"{path}\": {msg}"))
        }
        OpFailure::TestFailed => PatchError::TestFailed {
            path: path.to_owned(),
        },
    };
    let tokens = parse_pointer(path).map_err(located)?;
    let value = fields.get("value");
    let from = || match fields.get("from").and_then(Value::as_str) {
        Some(from) => parse_pointer(from),
        None => invalid("missing or non-string \"from\""),
    };
    let needs_value = || value.ok_or_else(|| OpFailure::Invalid("missing \"value\"".to_owned()));
    let result = match kind {
        "add" => needs_value().and_then(|v| add(doc, &tokens, v.clone())),
        "remove" => remove(doc, &tokens).map(drop),
        "replace" => needs_value().and_then(|v| replace(doc, &tokens, v.clone())),
        "move" => from().and_then(|from| {
            let moved = remove(doc, &from)?;
            add(doc, &tokens, moved)
        }),
        "copy" => from().and_then(|from| {
            let copied = get(doc, &from)?.clone();
            add(doc, &tokens, copied)
        }),
        "test" => needs_value().and_then(|v| test(doc, &tokens, v)),
        "" => invalid("missing or non-string \"op\""),
        other => invalid(format!("unknown operation {other:?}")),
    };
    result.map_err(located)
}

/// Splits a JSON pointer into unescaped reference tokens.
fn parse_pointer(path: &str) -> Result<Vec<String>, OpFailure> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return invalid(format!("json pointer {path:?} does not start with '/'"));
    };
    Ok(rest.split('/').map(unescape).collect())
}

/// `~1` is `/` and `~0` is `~`, decoded in one left-to-right pass so that
/// `~01` means `~1`. Other `~` sequences are kept as written, as the
/// server's library does.
fn unescape(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.peek() {
                Some('0') => {
                    out.push('~');
                    chars.next();
                }
                Some('1') => {
                    out.push('/');
                    chars.next();
                }
                _ => out.push('~'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses an array index the way Go's `strconv.Atoi` does (optional sign,
/// decimal digits, leading zeros allowed).
fn parse_index(token: &str) -> Result<i64, OpFailure> {
    let digits = token.strip_prefix(['+', '-']).unwrap_or(token);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return invalid(format!("{token:?} is not a proper array index"));
    }
    token
        .parse::<i64>()
        .or_else(|_| invalid(format!("array index {token:?} is out of range")))
}

/// The container holding the value the pointer names, and the last token.
fn parent_mut<'d, 't>(
    doc: &'d mut Value,
    tokens: &'t [String],
) -> Result<(&'d mut Value, &'t str), OpFailure> {
    let Some((last, walk)) = tokens.split_last() else {
        return invalid("operations on the document root are not supported");
    };
    let mut current = doc;
    for token in walk {
        current = match current {
            Value::Object(map) => match map.get_mut(token.as_str()) {
                Some(next) => next,
                None => return invalid(format!("missing member {token:?} on the way")),
            },
            Value::Array(items) => {
                let i = parse_index(token)?;
                let len = items.len();
                match usize::try_from(i).ok().and_then(|i| items.get_mut(i)) {
                    Some(next) => next,
                    None => return invalid(format!("index {i} out of bounds (length {len})")),
                }
            }
            _ => return invalid(format!("cannot descend into a scalar at {token:?}")),
        };
    }
    Ok((current, last.as_str()))
}

fn get<'d>(doc: &'d mut Value, tokens: &[String]) -> Result<&'d mut Value, OpFailure> {
    let (parent, last) = parent_mut(doc, tokens)?;
    match parent {
        Value::Object(map) => match map.get_mut(last) {
            Some(v) => Ok(v),
            None => invalid(format!("missing member {last:?}")),
        },
        Value::Array(items) => {
            let i = parse_index(last)?;
            let len = items.len();
            match usize::try_from(i).ok().and_then(|i| items.get_mut(i)) {
                Some(v) => Ok(v),
                None => invalid(format!("index {i} out of bounds (length {len})")),
            }
        }
        _ => invalid("parent is a scalar"),
    }
}

fn add(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), OpFailure> {
    let (parent, last) = parent_mut(doc, tokens)?;
    match parent {
        Value::Object(map) => {
            map.insert(last.to_owned(), value);
            Ok(())
        }
        Value::Array(items) => {
            if last == "-" {
                items.push(value);
                return Ok(());
            }
            // An insertion point may be one past the end; negative indices
            // count back from that point.
            let slots = items.len() + 1;
            match resolve_index(parse_index(last)?, slots) {
                Some(at) => {
                    items.insert(at, value);
                    Ok(())
                }
                None => invalid(format!(
                    "index {last} out of bounds for insertion (length {})",
                    items.len()
                )),
            }
        }
        _ => invalid("parent is a scalar"),
    }
}

fn remove(doc: &mut Value, tokens: &[String]) -> Result<Value, OpFailure> {
    let (parent, last) = parent_mut(doc, tokens)?;
    match parent {
        Value::Object(map) => match map.remove(last) {
            Some(v) => Ok(v),
            None => invalid(format!("unable to remove nonexistent key {last:?}")),
        },
        Value::Array(items) => match resolve_index(parse_index(last)?, items.len()) {
            Some(at) => Ok(items.remove(at)),
            None => invalid(format!(
                "index {last} out of bounds (length {})",
                items.len()
            )),
        },
        _ => invalid("parent is a scalar"),
    }
}

/// Maps a possibly negative index onto `0..len`.
fn resolve_index(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let at = if i < 0 { i + len } else { i };
    if (0..len).contains(&at) {
        usize::try_from(at).ok()
    } else {
        None
    }
}

fn replace(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), OpFailure> {
    let (parent, last) = parent_mut(doc, tokens)?;
    if let Value::Object(map) = parent {
        // The server's library checks only that the parent exists, so a
        // replace of a missing member adds it.
        map.insert(last.to_owned(), value);
        return Ok(());
    }
    *get(doc, tokens)? = value;
    Ok(())
}

fn test(doc: &mut Value, tokens: &[String], expected: &Value) -> Result<(), OpFailure> {
    let (parent, last) = parent_mut(doc, tokens)?;
    if let Value::Object(map) = parent {
        // Kubernetes quirk: a missing member equals null.
        let actual = map.get(last).unwrap_or(&Value::Null);
        return if actual == expected {
            Ok(())
        } else {
            Err(OpFailure::TestFailed)
        };
    }
    if get(doc, tokens)? == expected {
        Ok(())
    } else {
        Err(OpFailure::TestFailed)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The examples of RFC 6902 appendix A that succeed, as data.
    #[test]
    fn rfc6902_appendix_a_successes() {
        let cases = [
            (
                "A.1 adding an object member",
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz", "value": "qux"}]),
                json!({"baz": "qux", "foo": "bar"}),
            ),
            (
                "A.2 adding an array element",
                json!({"foo": ["bar", "baz"]}),
                json!([{"op": "add", "path": "/foo/1", "value": "qux"}]),
                json!({"foo": ["bar", "qux", "baz"]}),
            ),
            (
                "A.3 removing an object member",
                json!({"baz": "qux", "foo": "bar"}),
                json!([{"op": "remove", "path": "/baz"}]),
                json!({"foo": "bar"}),
            ),
            (
                "A.4 removing an array element",
                json!({"foo": ["bar", "qux", "baz"]}),
                json!([{"op": "remove", "path": "/foo/1"}]),
                json!({"foo": ["bar", "baz"]}),
            ),
            (
                "A.5 replacing a value",
                json!({"baz": "qux", "foo": "bar"}),
                json!([{"op": "replace", "path": "/baz", "value": "boo"}]),
                json!({"baz": "boo", "foo": "bar"}),
            ),
            (
                "A.6 moving a value",
                json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
                json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
                json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
            ),
            (
                "A.7 moving an array element",
                json!({"foo": ["all", "grass", "cows", "eat"]}),
                json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}]),
                json!({"foo": ["all", "cows", "eat", "grass"]}),
            ),
            (
                "A.8 testing a value: success",
                json!({"baz": "qux", "foo": ["a", 2, "c"]}),
                json!([
                    {"op": "test", "path": "/baz", "value": "qux"},
                    {"op": "test", "path": "/foo/1", "value": 2}
                ]),
                json!({"baz": "qux", "foo": ["a", 2, "c"]}),
            ),
            (
                "A.10 adding a nested member object",
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
                json!({"foo": "bar", "child": {"grandchild": {}}}),
            ),
            (
                "A.11 ignoring unrecognized elements",
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}]),
                json!({"foo": "bar", "baz": "qux"}),
            ),
            (
                "A.14 ~ escape ordering",
                json!({"/": 9, "~1": 10}),
                json!([{"op": "test", "path": "/~01", "value": 10}]),
                json!({"/": 9, "~1": 10}),
            ),
            (
                "A.16 adding an array value",
                json!({"foo": ["bar"]}),
                json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
                json!({"foo": ["bar", ["abc", "def"]]}),
            ),
        ];
        for (desc, doc, patch, want) in cases {
            match json_patch(&doc, &patch) {
                Ok(got) => assert_eq!(got, want, "{desc}"),
                Err(e) => panic!("{desc}: unexpected error {e}"),
            }
        }
    }

    /// The examples of RFC 6902 appendix A that fail, with the error kind.
    #[test]
    fn rfc6902_appendix_a_failures() {
        let cases = [
            (
                "A.9 testing a value: error",
                json!({"baz": "qux"}),
                json!([{"op": "test", "path": "/baz", "value": "bar"}]),
                "test_failed",
            ),
            (
                "A.12 adding to a nonexistent target",
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz/bat", "value": "qux"}]),
                "invalid",
            ),
            (
                "A.15 comparing strings and numbers",
                json!({"/": 9, "~1": 10}),
                json!([{"op": "test", "path": "/~01", "value": "10"}]),
                "test_failed",
            ),
        ];
        for (desc, doc, patch, kind) in cases {
            match json_patch(&doc, &patch) {
                Ok(got) => panic!("{desc}: expected an error, got {got}"),
                Err(e) => assert_eq!(e.kind(), kind, "{desc}: {e}"),
            }
        }
    }

    #[test]
    fn kubernetes_behaviour() {
        let node = json!({
            "metadata": {"name": "n1", "labels": {"a/b": "1"}},
            "spec": {"taints": [{"key": "x", "effect": "NoSchedule"}]}
        });
        let ok_cases = [
            (
                "test of a missing member against null succeeds",
                json!([{"op": "test", "path": "/metadata/annotations", "value": null}]),
                node.clone(),
            ),
            (
                "replace of a missing member adds it",
                json!([{"op": "replace", "path": "/spec/unschedulable", "value": true}]),
                json!({
                    "metadata": {"name": "n1", "labels": {"a/b": "1"}},
                    "spec": {"taints": [{"key": "x", "effect": "NoSchedule"}], "unschedulable": true}
                }),
            ),
            (
                "~1 addresses a label with a slash",
                json!([{"op": "remove", "path": "/metadata/labels/a~1b"}]),
                json!({
                    "metadata": {"name": "n1", "labels": {}},
                    "spec": {"taints": [{"key": "x", "effect": "NoSchedule"}]}
                }),
            ),
            (
                "negative add index counts from the end",
                json!([{"op": "add", "path": "/spec/taints/-1", "value": {"key": "y"}}]),
                json!({
                    "metadata": {"name": "n1", "labels": {"a/b": "1"}},
                    "spec": {"taints": [{"key": "x", "effect": "NoSchedule"}, {"key": "y"}]}
                }),
            ),
            (
                "copy then test",
                json!([
                    {"op": "copy", "from": "/metadata/name", "path": "/metadata/labels/name"},
                    {"op": "test", "path": "/metadata/labels/name", "value": "n1"}
                ]),
                json!({
                    "metadata": {"name": "n1", "labels": {"a/b": "1", "name": "n1"}},
                    "spec": {"taints": [{"key": "x", "effect": "NoSchedule"}]}
                }),
            ),
        ];
        for (desc, patch, want) in ok_cases {
            match json_patch(&node, &patch) {
                Ok(got) => assert_eq!(got, want, "{desc}"),
                Err(e) => panic!("{desc}: unexpected error {e}"),
            }
        }

        let err_cases = [
            (
                "test of a missing member against a value fails",
                json!([{"op": "test", "path": "/metadata/annotations", "value": {}}]),
                "json patch test failed at /metadata/annotations",
            ),
            (
                "remove of a missing member is an error naming index and path",
                json!([
                    {"op": "test", "path": "/metadata/name", "value": "n1"},
                    {"op": "remove", "path": "/metadata/annotations"}
                ]),
                "invalid patch: operation 1 (remove) at \"/metadata/annotations\": unable to remove nonexistent key \"annotations\"",
            ),
            (
                "test under a missing parent is an error, not a test failure",
                json!([{"op": "test", "path": "/status/conditions", "value": null}]),
                "invalid patch: operation 0 (test) at \"/status/conditions\": missing member \"status\" on the way",
            ),
            (
                "root is not addressable",
                json!([{"op": "replace", "path": "", "value": {}}]),
                "invalid patch: operation 0 (replace) at \"\": operations on the document root are not supported",
            ),
            (
                "move into own child",
                json!([{"op": "move", "from": "/spec", "path": "/spec/inner"}]),
                "invalid patch: operation 0 (move) at \"/spec/inner\": missing member \"spec\" on the way",
            ),
            (
                "unknown operation",
                json!([{"op": "frobnicate", "path": "/a"}]),
                "invalid patch: operation 0 (frobnicate) at \"/a\": unknown operation \"frobnicate\"",
            ),
            (
                "add without value",
                json!([{"op": "add", "path": "/a"}]),
                "invalid patch: operation 0 (add) at \"/a\": missing \"value\"",
            ),
            (
                "array index out of bounds",
                json!([{"op": "replace", "path": "/spec/taints/1", "value": {}}]),
                "invalid patch: operation 0 (replace) at \"/spec/taints/1\": index 1 out of bounds (length 1)",
            ),
            (
                "dash is only for add",
                json!([{"op": "remove", "path": "/spec/taints/-"}]),
                "invalid patch: operation 0 (remove) at \"/spec/taints/-\": \"-\" is not a proper array index",
            ),
            (
                "patch must be an array",
                json!({"op": "add"}),
                "invalid patch: json patch must be an array of operations",
            ),
        ];
        for (desc, patch, want) in err_cases {
            match json_patch(&node, &patch) {
                Ok(got) => panic!("{desc}: expected an error, got {got}"),
                Err(e) => assert_eq!(e.to_string(), want, "{desc}"),
            }
        }
    }

    #[test]
    fn failed_patch_changes_nothing_and_limits_apply() {
        let doc = json!({"a": 1});
        let ops: Vec<Value> = (0..=MAX_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "/a", "value": 1}))
            .collect();
        let err = json_patch(&doc, &Value::Array(ops));
        assert!(
            matches!(err, Err(PatchError::Invalid(ref m)) if m.contains("10001 operations")),
            "too many operations are refused: {err:?}"
        );
    }
}
