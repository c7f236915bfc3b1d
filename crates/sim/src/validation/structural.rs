//! The non-CEL checks of a custom resource write, in one walk.
//!
//! A real server runs three independent validators here, and each has its own
//! wording and path spelling, so the walk keeps their findings apart and the
//! caller concatenates them in the server's order:
//! - the OpenAPI schema validator (kube-openapi): types, enums, bounds,
//!   patterns, formats, required fields, junctors;
//! - embedded-resource checks (`x-kubernetes-embedded-resource`);
//! - list invariants (`x-kubernetes-list-type: set|map`).
//!
//! On update the OpenAPI findings ratchet, as they do on a current server:
//! a value equal to its previous version (paired through properties, map keys
//! and keyed lists) is not re-judged, so tightening a schema does not make
//! untouched objects unwritable.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use super::FieldCause;
use super::cel_rules::correlate_by_keys;
use super::node::{Additional, ListType, Node};
use super::render::{self, Seg};

#[derive(Debug, Default)]
pub(super) struct Report {
    pub(super) openapi: Vec<FieldCause>,
    pub(super) embedded: Vec<FieldCause>,
    pub(super) list_types: Vec<FieldCause>,
}

pub(super) fn validate(root: &Node, obj: &Value, old: Option<&Value>) -> Report {
    let mut walk = Walk {
        report: Report::default(),
        path: Vec::new(),
    };
    walk.node(root, obj, old, false);
    walk.report
}

struct Walk<'o> {
    report: Report,
    path: Vec<Seg<'o>>,
}

impl<'o> Walk<'o> {
    /// `quiet` suppresses OpenAPI findings for this subtree (ratcheted, or
    /// the parent object already failed its property-count bounds, after
    /// which kube-openapi does not look at the children); the other
    /// validators still run.
    fn node(&mut self, n: &Node, v: &'o Value, old: Option<&'o Value>, quiet: bool) {
        let quiet = quiet || old == Some(v);
        if !quiet {
            self.check_type(n, v);
            self.check_junctors(n, v);
        }
        match v {
            Value::Null => {}
            Value::String(s) if !quiet => self.check_string(n, s),
            Value::Number(num) if !quiet => self.check_number(n, num),
            Value::Array(items) => self.array(n, items, old, quiet),
            _ => {}
        }
        if !quiet {
            self.check_enum(n, v);
        }
        if let Value::Object(map) = v {
            self.object(n, map, old, quiet);
        }
    }

    fn name(&self) -> String {
        render::openapi_name(&self.path)
    }

    fn field(&self) -> String {
        render::openapi_field(&self.name())
    }

    fn check_type(&mut self, n: &Node, v: &Value) {
        if n.types.is_empty() {
            return;
        }
        let actual = render::json_type(v);
        let ok = match v {
            Value::Null => n.nullable,
            _ => n.types.contains(&actual) || (actual == "integer" && n.types.contains(&"number")),
        };
        if !ok {
            let quoted = render::go_quote(actual);
            let detail = format!(
                "{} in body must be of type {}: {quoted}",
                self.name(),
                n.type_label
            );
            let cause = render::type_invalid(self.field(), &quoted, &detail);
            self.report.openapi.push(cause);
        }
    }

    /// Findings of a junctor branch, collected apart so the branch can be
    /// judged as a whole.
    fn branch(&mut self, branch: &Node, v: &'o Value) -> Vec<FieldCause> {
        let saved = std::mem::take(&mut self.report.openapi);
        self.node(branch, v, None, false);
        std::mem::replace(&mut self.report.openapi, saved)
    }

    /// The junctor errors kube-openapi raises are not field errors, so the
    /// server reports them at the nil path with an empty value.
    fn junctor_error(&mut self, text: String) {
        self.report
            .openapi
            .push(render::invalid(render::NIL_PATH.to_owned(), "\"\"", &text));
    }

    fn check_junctors(&mut self, n: &Node, v: &'o Value) {
        if n.any_of.is_empty() && n.one_of.is_empty() && n.all_of.is_empty() && n.not.is_none() {
            return;
        }
        let quoted_name = render::go_quote(&self.name());
        if !n.any_of.is_empty() {
            let mut best: Option<Vec<FieldCause>> = None;
            let mut succeeded = false;
            for b in &n.any_of {
                let errs = self.branch(b, v);
                if errs.is_empty() {
                    succeeded = true;
                    break;
                }
                if best.as_ref().is_none_or(|e| errs.len() < e.len()) {
                    best = Some(errs);
                }
            }
            if !succeeded {
                self.junctor_error(format!(
                    "{quoted_name} must validate at least one schema (anyOf)"
                ));
                self.report.openapi.extend(best.unwrap_or_default());
            }
        }
        if !n.one_of.is_empty() {
            let mut best: Option<Vec<FieldCause>> = None;
            let mut valid = 0usize;
            for b in &n.one_of {
                let errs = self.branch(b, v);
                if errs.is_empty() {
                    valid += 1;
                } else if valid == 0 && best.as_ref().is_none_or(|e| errs.len() < e.len()) {
                    best = Some(errs);
                }
            }
            if valid != 1 {
                let found = if valid == 0 {
                    "Found none valid".to_owned()
                } else {
                    format!("Found {valid} valid alternatives")
                };
                self.junctor_error(format!(
                    "{quoted_name} must validate one and only one schema (oneOf). {found}"
                ));
                if valid == 0 {
                    self.report.openapi.extend(best.unwrap_or_default());
                }
            }
        }
        if !n.all_of.is_empty() {
            let mut valid = 0usize;
            for b in &n.all_of {
                let errs = self.branch(b, v);
                if errs.is_empty() {
                    valid += 1;
                }
                self.report.openapi.extend(errs);
            }
            if valid != n.all_of.len() {
                let none = if valid == 0 { ". None validated" } else { "" };
                self.junctor_error(format!(
                    "{quoted_name} must validate all the schemas (allOf){none}"
                ));
            }
        }
        if let Some(not) = &n.not
            && self.branch(not, v).is_empty()
        {
            self.junctor_error(format!("{quoted_name} must not validate the schema (not)"));
        }
    }

    fn check_string(&mut self, n: &Node, s: &str) {
        let chars = || s.chars().count() as u64;
        if let Some(max) = n.max_length
            && chars() > max
        {
            let cause = render::too_long(self.field(), max);
            self.report.openapi.push(cause);
        }
        if let Some(min) = n.min_length
            && chars() < min
        {
            let detail = format!(
                "{} in body should be at least {min} chars long",
                self.name()
            );
            let cause = render::invalid(self.field(), &render::go_quote(s), &detail);
            self.report.openapi.push(cause);
        }
        if let Some(pattern) = &n.pattern
            && !pattern.regex.is_match(s)
        {
            let detail = format!("{} in body should match '{}'", self.name(), pattern.source);
            let cause = render::invalid(self.field(), &render::go_quote(s), &detail);
            self.report.openapi.push(cause);
        }
        if let Some(format) = n.format
            && !format.is_valid(s)
        {
            let quoted = render::go_quote(s);
            let detail = format!(
                "{} in body must be of type {}: {quoted}",
                self.name(),
                n.format_name
            );
            let cause = render::type_invalid(self.field(), &quoted, &detail);
            self.report.openapi.push(cause);
        }
    }

    fn check_number(&mut self, n: &Node, num: &Number) {
        let shown = render::go_number(num);
        let as_float = num.as_f64().unwrap_or(f64::NAN);
        if let Some(factor) = n.multiple_of {
            let ok = match num.as_i64() {
                Some(i) if factor.fract() == 0.0 && factor <= i64::MAX as f64 => {
                    i % (factor as i64) == 0
                }
                _ => {
                    let quotient = if factor < 1.0 {
                        (1.0 / factor) * as_float
                    } else {
                        as_float / factor
                    };
                    quotient.is_finite() && quotient.fract() == 0.0
                }
            };
            if !ok {
                let detail = format!(
                    "{} in body should be a multiple of {}",
                    self.name(),
                    render::go_float(factor)
                );
                let cause = render::invalid(self.field(), &shown, &detail);
                self.report.openapi.push(cause);
            }
        }
        if let Some(bound) = n.minimum {
            let side = if bound.exclusive {
                Fails::AtOrBelow
            } else {
                Fails::Below
            };
            let (fails, limit) = compare(num, bound.value, side);
            if fails {
                let relation = if bound.exclusive {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                let detail = format!("{} in body should be {relation} {limit}", self.name());
                let cause = render::invalid(self.field(), &shown, &detail);
                self.report.openapi.push(cause);
            }
        }
        if let Some(bound) = n.maximum {
            let side = if bound.exclusive {
                Fails::AtOrAbove
            } else {
                Fails::Above
            };
            let (fails, limit) = compare(num, bound.value, side);
            if fails {
                let relation = if bound.exclusive {
                    "less than"
                } else {
                    "less than or equal to"
                };
                let detail = format!("{} in body should be {relation} {limit}", self.name());
                let cause = render::invalid(self.field(), &shown, &detail);
                self.report.openapi.push(cause);
            }
        }
    }

    fn check_enum(&mut self, n: &Node, v: &Value) {
        let Some(allowed) = &n.enum_values else {
            return;
        };
        if allowed.is_empty() || allowed.iter().any(|a| enum_matches(a, v)) {
            return;
        }
        let allowed: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => s.clone(),
                Value::Number(num) => render::go_number(num),
                other => other.to_string(),
            })
            .collect();
        let cause = render::not_supported(self.field(), &render::bad_value(v), &allowed);
        self.report.openapi.push(cause);
    }

    fn array(&mut self, n: &Node, items: &'o [Value], old: Option<&'o Value>, quiet: bool) {
        self.check_list_type(n, items);
        if let Some(item_node) = &n.items {
            let old_items = old.and_then(Value::as_array);
            for (i, item) in items.iter().enumerate() {
                let item_old = match (&n.list_type, old_items) {
                    (ListType::Map(keys), Some(old_items)) => {
                        correlate_by_keys(item, old_items, keys, item_node)
                    }
                    _ => None,
                };
                self.path.push(Seg::Index(i));
                self.node(item_node, item, item_old, quiet);
                self.path.pop();
            }
        }
        if quiet {
            return;
        }
        let len = items.len();
        if let Some(min) = n.min_items
            && (len as u64) < min
        {
            let detail = format!("{} in body should have at least {min} items", self.name());
            let cause = render::invalid(self.field(), &len.to_string(), &detail);
            self.report.openapi.push(cause);
        }
        if let Some(max) = n.max_items
            && len as u64 > max
        {
            let cause = render::too_many(self.field(), len, max);
            self.report.openapi.push(cause);
        }
    }

    fn check_list_type(&mut self, n: &Node, items: &[Value]) {
        match &n.list_type {
            ListType::Atomic => {}
            ListType::Set => {
                for i in second_occurrences(items) {
                    self.list_error_duplicate(i, &items[i]);
                }
            }
            ListType::Map(keys) => {
                if let Some((i, bad)) = items
                    .iter()
                    .enumerate()
                    .find(|(_, x)| !x.is_null() && !x.is_object())
                {
                    let mut at = self.path.clone();
                    at.push(Seg::Index(i));
                    let cause = render::invalid(
                        render::field_path(&at),
                        &render::bad_value(bad),
                        "must be an object for an array of list-type map",
                    );
                    self.report.list_types.push(cause);
                    return;
                }
                // Items without a key still take part, as an "unspecified"
                // key that only collides with another unspecified key.
                let key_maps: Vec<Value> = items
                    .iter()
                    .map(|x| {
                        let mut key = Map::new();
                        if let Some(map) = x.as_object() {
                            for k in keys {
                                if let Some(kv) = map.get(k) {
                                    key.insert(k.clone(), kv.clone());
                                }
                            }
                        }
                        Value::Object(key)
                    })
                    .collect();
                for i in second_occurrences(&key_maps) {
                    self.list_error_duplicate(i, &key_maps[i]);
                }
            }
        }
    }

    fn list_error_duplicate(&mut self, index: usize, value: &Value) {
        let mut at = self.path.clone();
        at.push(Seg::Index(index));
        let cause = render::duplicate(render::field_path(&at), &render::bad_value(value));
        self.report.list_types.push(cause);
    }

    fn object(
        &mut self,
        n: &Node,
        map: &'o Map<String, Value>,
        old: Option<&'o Value>,
        quiet: bool,
    ) {
        let mut children_quiet = quiet;
        if !quiet {
            let count = map.len();
            if let Some(min) = n.min_properties
                && (count as u64) < min
            {
                let detail = format!(
                    "{} in body should have at least {min} properties",
                    self.name()
                );
                let cause = render::invalid(self.field(), &count.to_string(), &detail);
                self.report.openapi.push(cause);
                children_quiet = true;
            } else if let Some(max) = n.max_properties
                && count as u64 > max
            {
                let cause = render::too_many(self.field(), count, max);
                self.report.openapi.push(cause);
                children_quiet = true;
            }
        }

        if n.embedded {
            self.check_embedded(map);
        }

        let old_map = old.and_then(Value::as_object);
        for (key, child_value) in map {
            if n.properties.contains_key(key) {
                continue;
            }
            match &n.additional {
                Additional::Schema(values) => {
                    self.path.push(Seg::Key(key));
                    self.node(
                        values,
                        child_value,
                        old_map.and_then(|m| m.get(key)),
                        children_quiet,
                    );
                    self.path.pop();
                }
                Additional::Bool(false) if !children_quiet => {
                    let name = self.name();
                    let detail = format!("{name}.{key} in body is a forbidden property");
                    let cause = render::invalid(
                        render::openapi_field(&name),
                        &render::go_quote(key),
                        &detail,
                    );
                    self.report.openapi.push(cause);
                }
                _ => {}
            }
        }
        for (key, child_value) in map {
            if let Some(child) = n.properties.get(key) {
                self.path.push(Seg::Prop(key));
                self.node(
                    child,
                    child_value,
                    old_map.and_then(|m| m.get(key)),
                    children_quiet,
                );
                self.path.pop();
            }
        }
        if !children_quiet {
            let name = self.name();
            for key in &n.required {
                if !map.contains_key(key) {
                    let field = render::openapi_field(&format!("{name}.{key}"));
                    self.report.openapi.push(render::required(field, ""));
                }
            }
        }
    }

    /// An embedded object must name its type the way a top-level object
    /// does; its metadata is left to the caller.
    fn check_embedded(&mut self, map: &Map<String, Value>) {
        let at = |field: &'static str| {
            let mut path = self.path.clone();
            path.push(Seg::Prop(field));
            render::field_path(&path)
        };
        for field in ["apiVersion", "kind"] {
            if !map.contains_key(field) {
                let cause = render::required(at(field), "must not be empty");
                self.report.embedded.push(cause);
            }
        }
        for field in ["apiVersion", "kind"] {
            let Some(value) = map.get(field) else {
                continue;
            };
            let problem = match value {
                Value::String(s) if s.is_empty() => Some("must not be empty".to_owned()),
                Value::String(s) if field == "apiVersion" && s.matches('/').count() > 1 => {
                    Some(format!("unexpected GroupVersion string: {s}"))
                }
                Value::String(_) => None,
                _ => Some("must be a string".to_owned()),
            };
            if let Some(problem) = problem {
                let cause = render::invalid(at(field), &render::bad_value(value), &problem);
                self.report.embedded.push(cause);
            }
        }
    }
}

/// Which side of a bound fails a check.
#[derive(Clone, Copy)]
enum Fails {
    Below,
    AtOrBelow,
    Above,
    AtOrAbove,
}

impl Fails {
    fn holds(self, ord: Ordering) -> bool {
        match self {
            Fails::Below => ord == Ordering::Less,
            Fails::AtOrBelow => ord != Ordering::Greater,
            Fails::Above => ord == Ordering::Greater,
            Fails::AtOrAbove => ord != Ordering::Less,
        }
    }
}

/// Compares a JSON number with a schema bound the way kube-openapi does:
/// an integer against an integral bound in integers (and the bound printed
/// as one), anything else as floats. Returns whether the check fails and
/// the bound as the message prints it.
fn compare(num: &Number, bound: f64, fails: Fails) -> (bool, String) {
    match num.as_i64() {
        Some(i) if bound.fract() == 0.0 && bound.abs() < 9.0e18 => {
            let b = bound as i64;
            (fails.holds(i.cmp(&b)), b.to_string())
        }
        _ => {
            let f = num.as_f64().unwrap_or(f64::NAN);
            let failed = f.partial_cmp(&bound).is_some_and(|ord| fails.holds(ord));
            (failed, render::go_float(bound))
        }
    }
}

/// Enum membership: numbers compare by value (the schema's numbers decode
/// as floats, the object's as integers), everything else structurally.
fn enum_matches(allowed: &Value, v: &Value) -> bool {
    match (allowed, v) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => allowed == v,
    }
}

/// Indexes of the second occurrence of every repeated value, which is what
/// the server reports (once per value, however often it repeats). Values
/// are compared by their JSON text, as the server compares compound items;
/// for scalars that also keeps `1` and `1.0` apart, as Go's `==` does.
fn second_occurrences(items: &[Value]) -> Vec<usize> {
    let mut seen: HashMap<String, u32> = HashMap::with_capacity(items.len());
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let count = seen.entry(item.to_string()).or_insert(0);
        *count += 1;
        if *count == 2 {
            out.push(i);
        }
    }
    out
}
