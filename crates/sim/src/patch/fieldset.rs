//! Field sets: the paths a field manager owns, and their `FieldsV1`
//! encoding inside `metadata.managedFields`.
//!
//! A set is a tree. Each node may be a *member* (the path itself is owned,
//! encoded as `".": {}` when the node also has children, or as a bare `{}`
//! when it has none) and may have children reached through path elements:
//! `f:<name>` for an object field, `k:<json>` for a keyed-list item,
//! `v:<json>` for a set-list item and `i:<n>` for a positional item.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::ListKeys;

/// One step from a node of an object to one of its children.
///
/// The derived order (fields, then keys, then values, then indices) is the
/// order the API server writes `FieldsV1` in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PathElement {
    /// A field of an object. Struct fields and map keys look the same on
    /// the wire, so they are not told apart.
    Field(String),
    /// An item of a keyed list, named by its key fields as canonical JSON.
    Key(String),
    /// An item of a set list, named by its whole value as canonical JSON.
    Value(String),
    /// An item of a list by position, for items that have no usable key.
    Index(usize),
}

impl PathElement {
    pub(crate) fn encode(&self) -> String {
        let (prefix, body) = match self {
            PathElement::Field(name) => ("f:", name.as_str()),
            PathElement::Key(json) => ("k:", json.as_str()),
            PathElement::Value(json) => ("v:", json.as_str()),
            PathElement::Index(i) => return format!("i:{i}"),
        };
        let mut out = String::with_capacity(prefix.len() + body.len());
        out.push_str(prefix);
        out.push_str(body);
        out
    }

    fn decode(s: &str) -> Option<PathElement> {
        let (prefix, rest) = s.split_at_checked(2)?;
        match prefix {
            "f:" => Some(PathElement::Field(rest.to_owned())),
            // Re-canonicalise so that sets written by other servers (with
            // other spacing or key order) compare equal to ours.
            "k:" => Some(PathElement::Key(recanonicalize(rest))),
            "v:" => Some(PathElement::Value(recanonicalize(rest))),
            "i:" => rest.parse().ok().map(PathElement::Index),
            _ => None,
        }
    }
}

fn recanonicalize(json: &str) -> String {
    match serde_json::from_str::<Value>(json) {
        Ok(v) => canonical_json(&v),
        Err(_) => json.to_owned(),
    }
}

/// The path element naming `item` inside a list whose merge keys are `keys`
/// (empty keys = a set list), or `None` when the item carries none of the
/// keys (or is not an object where one is needed).
pub(crate) fn item_element(item: &Value, keys: &[String]) -> Option<PathElement> {
    if keys.is_empty() {
        return Some(PathElement::Value(canonical_json(item)));
    }
    let Value::Object(fields) = item else {
        return None;
    };
    let mut sorted: Vec<(&str, &Value)> = keys
        .iter()
        .filter_map(|k| fields.get(k).map(|v| (k.as_str(), v)))
        .collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    sorted.dedup_by(|a, b| a.0 == b.0);
    let mut out = String::from("{");
    for (i, (k, v)) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(k, &mut out);
        out.push(':');
        write_canonical(v, &mut out);
    }
    out.push('}');
    Some(PathElement::Key(out))
}

/// Like [`item_element`], falling back to the item's position so that
/// malformed live data still gets a stable name.
pub(crate) fn item_element_or_index(item: &Value, keys: &[String], index: usize) -> PathElement {
    item_element(item, keys).unwrap_or(PathElement::Index(index))
}

/// Compact JSON with object keys sorted, the form the server uses inside
/// `k:` and `v:` path elements.
pub(crate) fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(k, out);
                out.push(':');
                write_canonical(val, out);
            }
            out.push('}');
        }
    }
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A set of owned paths, as a tree (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    /// The path leading to this node is itself in the set.
    pub(crate) member: bool,
    pub(crate) children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    pub(crate) fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    pub(crate) fn child_mut(&mut self, pe: PathElement) -> &mut FieldSet {
        self.children.entry(pe).or_default()
    }

    /// Drops nodes that hold nothing, so that equality and emptiness are
    /// structural.
    pub(crate) fn prune(&mut self) {
        self.children.retain(|_, child| {
            child.prune();
            child.member || !child.children.is_empty()
        });
    }

    pub(crate) fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (pe, theirs) in &other.children {
            self.children
                .entry(pe.clone())
                .or_default()
                .union_with(theirs);
        }
    }

    /// Removes every member of `other` from `self` (members only: owning a
    /// child of a removed path is unaffected).
    pub(crate) fn subtract(&mut self, other: &FieldSet) {
        if other.member {
            self.member = false;
        }
        for (pe, theirs) in &other.children {
            if let Some(mine) = self.children.get_mut(pe) {
                mine.subtract(theirs);
                if mine.is_empty() {
                    self.children.remove(pe);
                }
            }
        }
    }

    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (pe, mine) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                let both = mine.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(pe.clone(), both);
                }
            }
        }
        out
    }

    /// Whether the two sets share a member.
    pub(crate) fn intersects(&self, other: &FieldSet) -> bool {
        (self.member && other.member)
            || self.children.iter().any(|(pe, mine)| {
                other
                    .children
                    .get(pe)
                    .is_some_and(|theirs| mine.intersects(theirs))
            })
    }

    /// Whether the set holds anything at or under `path`.
    pub(crate) fn holds(&self, path: &[PathElement]) -> bool {
        match path.split_first() {
            None => !self.is_empty(),
            Some((first, rest)) => self.children.get(first).is_some_and(|c| c.holds(rest)),
        }
    }

    /// Removes the node at `path` and everything under it; says whether
    /// anything was there.
    pub(crate) fn remove_subtree(&mut self, path: &[PathElement]) -> bool {
        let Some((first, rest)) = path.split_first() else {
            let had = !self.is_empty();
            *self = FieldSet::default();
            return had;
        };
        if rest.is_empty() {
            return self
                .children
                .remove(first)
                .is_some_and(|gone| !gone.is_empty());
        }
        let Some(child) = self.children.get_mut(first) else {
            return false;
        };
        let removed = child.remove_subtree(rest);
        if child.is_empty() {
            self.children.remove(first);
        }
        removed
    }

    /// Every member path, in set order.
    pub(crate) fn members(&self) -> Vec<Vec<PathElement>> {
        fn walk(set: &FieldSet, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
            if set.member {
                out.push(prefix.clone());
            }
            for (pe, child) in &set.children {
                prefix.push(pe.clone());
                walk(child, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    /// The `fieldsV1` object for this set (the root is never a member).
    pub(crate) fn to_fields_v1(&self) -> Value {
        Value::Object(self.children_to_map())
    }

    fn children_to_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        for (pe, child) in &self.children {
            if child.is_empty() {
                continue;
            }
            let mut inner = Map::new();
            if child.member && !child.children.is_empty() {
                inner.insert(".".to_owned(), Value::Object(Map::new()));
            }
            inner.extend(child.children_to_map());
            map.insert(pe.encode(), Value::Object(inner));
        }
        map
    }

    /// Reads a `fieldsV1` object. Unknown or malformed entries are skipped:
    /// a damaged entry must not make the object unwritable.
    pub(crate) fn from_fields_v1(v: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        if let Value::Object(map) = v {
            set.read_children(map);
        }
        set.prune();
        set
    }

    fn read_children(&mut self, map: &Map<String, Value>) {
        for (k, v) in map {
            if k == "." {
                self.member = true;
                continue;
            }
            let Some(pe) = PathElement::decode(k) else {
                continue;
            };
            let child = self.child_mut(pe);
            match v {
                Value::Object(inner) if !inner.is_empty() => child.read_children(inner),
                _ => child.member = true,
            }
        }
    }
}

/// Whether a stored `fieldsV1` object shares a member with `set`, without
/// parsing it. Stored sets are ones this module wrote, so their path
/// elements are canonical and can be looked up by their encoding.
pub(crate) fn raw_intersects(raw: &Value, set: &FieldSet) -> bool {
    let Value::Object(map) = raw else {
        return false;
    };
    set.children.iter().any(|(pe, sub)| {
        map.get(&pe.encode())
            .is_some_and(|child| (sub.member && raw_is_member(child)) || raw_intersects(child, sub))
    })
}

fn raw_is_member(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty() || m.contains_key("."),
        _ => true,
    }
}

/// Whether a stored `fieldsV1` object holds anything at or under `path`.
pub(crate) fn raw_holds(raw: &Value, path: &[PathElement]) -> bool {
    let mut at = raw;
    for pe in path {
        match at.get(pe.encode()) {
            Some(next) => at = next,
            None => return false,
        }
    }
    true
}

/// Formats a path the way the API server prints it in conflicts:
/// `.spec.taints[key="x",effect="NoSchedule"].value`. Key fields are
/// printed in the order `keys` declares them for that list.
pub(crate) fn display_path(path: &[PathElement], keys: &dyn ListKeys) -> String {
    let mut out = String::new();
    let mut names: Vec<&str> = Vec::new();
    for pe in path {
        match pe {
            PathElement::Field(name) => {
                out.push('.');
                out.push_str(name);
                names.push(name);
            }
            PathElement::Key(json) => {
                let fields = match serde_json::from_str::<Value>(json) {
                    Ok(Value::Object(m)) => m,
                    _ => {
                        out.push('[');
                        out.push_str(json);
                        out.push(']');
                        continue;
                    }
                };
                let mut order: Vec<String> = keys.keys(&names).unwrap_or_default();
                order.retain(|k| fields.contains_key(k));
                let mut rest: Vec<&String> = fields.keys().filter(|k| !order.contains(k)).collect();
                rest.sort();
                order.extend(rest.into_iter().cloned());
                out.push('[');
                for (i, k) in order.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(k);
                    out.push('=');
                    if let Some(v) = fields.get(k) {
                        write_canonical(v, &mut out);
                    }
                }
                out.push(']');
            }
            PathElement::Value(json) => {
                out.push_str("[=");
                out.push_str(json);
                out.push(']');
            }
            PathElement::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    struct Keys;
    impl ListKeys for Keys {
        fn keys(&self, path: &[&str]) -> Option<Vec<String>> {
            match path {
                ["spec", "taints"] => Some(vec!["key".into(), "effect".into()]),
                _ => None,
            }
        }
    }

    #[test]
    fn fields_v1_round_trips() {
        let cases = [
            (
                "leaves only",
                json!({"f:metadata": {"f:labels": {"f:foo": {}}}}),
            ),
            (
                "keyed item with self marker",
                json!({"f:spec": {"f:taints": {
                    "k:{\"effect\":\"NoSchedule\",\"key\":\"x\"}": {".": {}, "f:effect": {}, "f:key": {}}
                }}}),
            ),
            (
                "set item and positional item",
                json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}, "i:3": {}}}}),
            ),
        ];
        for (desc, v) in cases {
            let set = FieldSet::from_fields_v1(&v);
            assert_eq!(set.to_fields_v1(), v, "{desc}");
        }
    }

    #[test]
    fn foreign_key_spelling_is_canonicalised() {
        let theirs = json!({"k:{ \"key\": \"x\", \"effect\": \"NoSchedule\" }": {".": {}}});
        let ours = json!({"k:{\"effect\":\"NoSchedule\",\"key\":\"x\"}": {}});
        assert_eq!(
            FieldSet::from_fields_v1(&theirs),
            FieldSet::from_fields_v1(&ours)
        );
    }

    #[test]
    fn set_algebra() {
        let a = FieldSet::from_fields_v1(&json!({"f:a": {}, "f:b": {"f:c": {}, "f:d": {}}}));
        let b = FieldSet::from_fields_v1(&json!({"f:b": {"f:c": {}}, "f:e": {}}));
        let mut diff = a.clone();
        diff.subtract(&b);
        assert_eq!(
            diff.to_fields_v1(),
            json!({"f:a": {}, "f:b": {"f:d": {}}}),
            "difference keeps what b lacks"
        );
        assert_eq!(
            a.intersection(&b).to_fields_v1(),
            json!({"f:b": {"f:c": {}}}),
            "intersection keeps shared members"
        );
        let mut u = a.clone();
        u.union_with(&b);
        assert_eq!(
            u.to_fields_v1(),
            json!({"f:a": {}, "f:b": {"f:c": {}, "f:d": {}}, "f:e": {}}),
            "union has all"
        );
        let mut r = a.clone();
        assert!(
            r.remove_subtree(&[PathElement::Field("b".into())]),
            "b was there"
        );
        assert_eq!(r.to_fields_v1(), json!({"f:a": {}}), "subtree removal");
        assert!(
            !r.remove_subtree(&[PathElement::Field("zz".into())]),
            "zz was not"
        );
    }

    #[test]
    fn display_paths() {
        let item = item_element(
            &json!({"key": "x", "effect": "NoSchedule", "value": "v"}),
            &["key".into(), "effect".into()],
        );
        let Some(item) = item else {
            panic!("taint has its keys");
        };
        let cases = [
            (
                "plain field",
                vec![
                    PathElement::Field("spec".into()),
                    PathElement::Field("replicas".into()),
                ],
                ".spec.replicas",
            ),
            (
                "keyed item in declared key order",
                vec![
                    PathElement::Field("spec".into()),
                    PathElement::Field("taints".into()),
                    item,
                ],
                ".spec.taints[key=\"x\",effect=\"NoSchedule\"]",
            ),
            (
                "set item",
                vec![
                    PathElement::Field("metadata".into()),
                    PathElement::Field("finalizers".into()),
                    PathElement::Value("\"a\"".into()),
                ],
                ".metadata.finalizers[=\"a\"]",
            ),
        ];
        for (desc, path, want) in cases {
            assert_eq!(display_path(&path, &Keys), want, "{desc}");
        }
    }

    #[test]
    fn item_elements() {
        let keys = ["key".to_owned(), "effect".to_owned()];
        let cases = [
            (
                "both keys, sorted",
                json!({"key": "x", "effect": "NoSchedule"}),
                Some(PathElement::Key(
                    "{\"effect\":\"NoSchedule\",\"key\":\"x\"}".into(),
                )),
            ),
            (
                "only one key present",
                json!({"key": "x"}),
                Some(PathElement::Key("{\"key\":\"x\"}".into())),
            ),
            ("no key present", json!({"value": "v"}), None),
            ("not an object", json!("x"), None),
        ];
        for (desc, item, want) in cases {
            assert_eq!(item_element(&item, &keys), want, "{desc}");
        }
        assert_eq!(
            item_element(&json!({"b": 1, "a": [true, null]}), &[]),
            Some(PathElement::Value("{\"a\":[true,null],\"b\":1}".into())),
            "set items are named by canonical value"
        );
    }
}
