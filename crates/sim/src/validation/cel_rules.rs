//! `x-kubernetes-validations`: CEL rules compiled once, evaluated per write.
//!
//! Evaluation goes through `kube-cel`'s validator, which already knows how
//! the server turns JSON into CEL values (escaped field names, `date-time`
//! as timestamps, int-or-string, embedded resources) and registers the
//! Kubernetes CEL libraries. What it does not do the way the server does is
//! choose *which* rules run: it walks the whole tree, pairs list items by
//! index and applies defaults itself. So each rule becomes its own small
//! `kube-cel` schema, a copy of the rule's node stripped of every other rule
//! and default, and our own walk decides when to run it: null values are
//! skipped, old values are paired only through properties, map keys and
//! keyed lists, transition rules wait for an old value, and rules on values
//! that did not change are not re-run (ratcheting).

use std::panic::AssertUnwindSafe;

use kube_cel::cel::ExecutionError;
use serde_json::{Map, Value};

use super::node::{Additional, ListType, Node};
use super::render::{self, Seg};
use super::{FieldCause, SchemaError};

/// Nesting kube-cel accepts below a rule (it refuses deeper trees).
const MAX_RULE_SUBTREE_DEPTH: usize = 64;

/// The reasons a rule may ask for; anything else is refused, as the server
/// refuses it.
#[derive(Debug, Clone, Copy)]
enum Reason {
    Invalid,
    Forbidden,
    Required,
    Duplicate,
}

/// A `fieldPath` step, resolved against the schema at compile time.
#[derive(Debug)]
enum FieldStep {
    Prop(String),
    Key(String),
}

#[derive(Debug)]
pub(super) struct CelRule {
    rule: String,
    /// The static message, already trimmed as the server trims it.
    message: Option<String>,
    has_message_expression: bool,
    reason: Reason,
    field_path: Vec<FieldStep>,
    /// The rule reads `oldSelf`.
    transition: bool,
    optional_old_self: bool,
    program: kube_cel::CompiledSchema,
}

impl CelRule {
    /// What the server calls `ruleErrorString`: the message when there is
    /// one, else the rule text.
    fn error_string(&self) -> &str {
        self.message.as_deref().unwrap_or_else(|| self.rule.trim())
    }

    fn default_detail(&self) -> String {
        match &self.message {
            Some(m) => m.clone(),
            None => format!("failed rule: {}", self.rule.trim()),
        }
    }
}

/// Compiles the rules declared on one schema node. `node` must already have
/// its children compiled (for `fieldPath` checks).
pub(super) fn compile_rules(
    raw: &Value,
    node: &Node,
    path: &str,
    correlatable: bool,
) -> Result<Vec<CelRule>, SchemaError> {
    let Some(list) = raw.get("x-kubernetes-validations") else {
        return Ok(Vec::new());
    };
    let list_path = format!("{path}.x-kubernetes-validations");
    let Some(list) = list.as_array() else {
        return Err(invalid_schema(&list_path, "must be an array of rules"));
    };
    if list.is_empty() {
        return Ok(Vec::new());
    }

    let stripped = strip(raw);
    if depth(&stripped) > MAX_RULE_SUBTREE_DEPTH {
        return Err(invalid_schema(
            &list_path,
            format!("the schema below a rule may be at most {MAX_RULE_SUBTREE_DEPTH} levels deep"),
        ));
    }

    list.iter()
        .enumerate()
        .map(|(i, raw_rule)| {
            compile_rule(
                raw_rule,
                &stripped,
                node,
                &format!("{list_path}[{i}]"),
                correlatable,
            )
        })
        .collect()
}

fn compile_rule(
    raw_rule: &Value,
    stripped: &Value,
    node: &Node,
    path: &str,
    correlatable: bool,
) -> Result<CelRule, SchemaError> {
    let Some(fields) = raw_rule.as_object() else {
        return Err(invalid_schema(path, "must be an object"));
    };
    let rule = match fields.get("rule") {
        Some(Value::String(r)) if !r.trim().is_empty() => r.clone(),
        Some(Value::String(_)) | None => {
            return Err(invalid_schema(&format!("{path}.rule"), "Required value"));
        }
        Some(_) => return Err(invalid_schema(&format!("{path}.rule"), "must be a string")),
    };
    let message = optional_string(fields, "message", path)?;
    if let Some(m) = &message {
        if m.contains('\n') {
            return Err(invalid_schema(
                &format!("{path}.message"),
                "message must not contain line breaks",
            ));
        }
        if m.trim().is_empty() {
            return Err(invalid_schema(
                &format!("{path}.message"),
                "message must be non-empty if specified",
            ));
        }
    }
    let message_expression = optional_string(fields, "messageExpression", path)?;
    let reason = match optional_string(fields, "reason", path)?.as_deref() {
        None | Some("FieldValueInvalid") => Reason::Invalid,
        Some("FieldValueForbidden") => Reason::Forbidden,
        Some("FieldValueRequired") => Reason::Required,
        Some("FieldValueDuplicate") => Reason::Duplicate,
        Some(other) => {
            return Err(invalid_schema(
                &format!("{path}.reason"),
                format!(
                    "Unsupported value: {}: supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\"",
                    render::go_quote(other)
                ),
            ));
        }
    };
    let field_path = match optional_string(fields, "fieldPath", path)? {
        None => Vec::new(),
        Some(fp) => resolve_field_path(&fp, node)
            .map_err(|why| invalid_schema(&format!("{path}.fieldPath"), why))?,
    };
    let optional_old_self = match fields.get("optionalOldSelf") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(invalid_schema(
                &format!("{path}.optionalOldSelf"),
                "must be a boolean",
            ));
        }
    };

    // Hand kube-cel only what it needs to know about this one rule, so it
    // cannot run anything else when we ask it to evaluate.
    let mut kube_rule = Map::new();
    kube_rule.insert("rule".to_owned(), Value::String(rule.clone()));
    if let Some(m) = &message {
        kube_rule.insert("message".to_owned(), Value::String(m.clone()));
    }
    if let Some(m) = &message_expression {
        kube_rule.insert("messageExpression".to_owned(), Value::String(m.clone()));
    }
    if optional_old_self {
        kube_rule.insert("optionalOldSelf".to_owned(), Value::Bool(true));
    }
    let mut schema = stripped.clone();
    if let Value::Object(map) = &mut schema {
        map.insert(
            "x-kubernetes-validations".to_owned(),
            Value::Array(vec![Value::Object(kube_rule)]),
        );
    }
    let program = kube_cel::compile_schema(&schema);
    let transition = match program.validations.first() {
        Some(Ok(compiled)) => compiled.is_transition_rule,
        Some(Err(kube_cel::CompilationError::MessageExpressionParse { source, .. })) => {
            return Err(invalid_schema(
                &format!("{path}.messageExpression"),
                format!("messageExpression compilation failed: {source}"),
            ));
        }
        Some(Err(kube_cel::CompilationError::Parse { source, .. })) => {
            return Err(invalid_schema(
                &format!("{path}.rule"),
                format!("compilation failed: {source}"),
            ));
        }
        Some(Err(other)) => {
            return Err(invalid_schema(path, format!("compilation failed: {other}")));
        }
        None => {
            return Err(invalid_schema(path, "rule was not compiled"));
        }
    };

    if transition && !correlatable {
        return Err(invalid_schema(
            &format!("{path}.rule"),
            "oldSelf cannot be used on the uncorrelatable portion of the schema (below the items of a list that is not x-kubernetes-list-type: map)",
        ));
    }
    if optional_old_self && !transition {
        return Err(invalid_schema(
            &format!("{path}.optionalOldSelf"),
            "may not be set to true for a rule that does not use oldSelf",
        ));
    }

    Ok(CelRule {
        rule,
        message: message.map(|m| m.trim().to_owned()),
        has_message_expression: message_expression.is_some(),
        reason,
        field_path,
        transition,
        optional_old_self,
        program,
    })
}

fn optional_string(
    fields: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, SchemaError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid_schema(&format!("{path}.{key}"), "must be a string")),
    }
}

fn invalid_schema(path: &str, reason: impl Into<String>) -> SchemaError {
    SchemaError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// The parts of a schema that change how kube-cel converts a value to CEL:
/// formats it turns into timestamps, durations or bytes, int-or-string,
/// maps (whose keys it must not escape) and embedded resources. Rules,
/// defaults and junctors are left out so kube-cel cannot act on them, and
/// so is every branch with nothing of the kind below it: kube-cel converts
/// an undescribed value exactly as it converts a plainly described one, and
/// it re-converts each described descendant, so the smaller copy is faster.
fn strip(raw: &Value) -> Value {
    strip_node(raw).unwrap_or_else(|| Value::Object(Map::new()))
}

/// The stripped node, or `None` when nothing at or below it matters to the
/// conversion.
fn strip_node(raw: &Value) -> Option<Value> {
    const KEPT: &[&str] = &[
        "type",
        "format",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
    ];
    let map = raw.as_object()?;
    let mut out = Map::new();
    for key in KEPT {
        if let Some(v) = map.get(*key) {
            out.insert((*key).to_owned(), v.clone());
        }
    }
    let converts_itself = matches!(
        map.get("format").and_then(Value::as_str),
        Some("date-time" | "duration" | "byte")
    ) || map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        || map.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
    let mut matters = converts_itself;

    if let Some(Value::Object(props)) = map.get("properties") {
        let props: Map<String, Value> = props
            .iter()
            .filter_map(|(k, v)| strip_node(v).map(|s| (k.clone(), s)))
            .collect();
        if !props.is_empty() {
            matters = true;
            out.insert("properties".to_owned(), Value::Object(props));
        }
    }
    if let Some(items) = map.get("items").and_then(strip_node) {
        matters = true;
        out.insert("items".to_owned(), items);
    }
    match map.get("additionalProperties") {
        Some(schema @ Value::Object(_)) => {
            matters = true;
            let values = strip_node(schema).unwrap_or_else(|| Value::Object(Map::new()));
            out.insert("additionalProperties".to_owned(), values);
        }
        Some(Value::Bool(true)) => {
            matters = true;
            out.insert("additionalProperties".to_owned(), Value::Bool(true));
        }
        _ => {}
    }
    matters.then_some(Value::Object(out))
}

fn depth(stripped: &Value) -> usize {
    let Some(map) = stripped.as_object() else {
        return 0;
    };
    let props = map
        .get("properties")
        .and_then(Value::as_object)
        .map_or(0, |p| p.values().map(depth).max().unwrap_or(0));
    let items = map.get("items").map_or(0, depth);
    let additional = map.get("additionalProperties").map_or(0, depth);
    1 + props.max(items).max(additional)
}

/// Parses a rule's `fieldPath` (`.a.b`, `.a['x.y']`) and checks that every
/// step names a property of the schema (or a key of a map) below the rule.
fn resolve_field_path(field_path: &str, node: &Node) -> Result<Vec<FieldStep>, String> {
    let mut steps = Vec::new();
    let mut current = node;
    let mut rest = field_path;
    if rest.is_empty() {
        return Err("fieldPath must be a valid path: must not be empty".to_owned());
    }
    while !rest.is_empty() {
        let name;
        if let Some(after) = rest.strip_prefix("['") {
            let Some(end) = after.find("']") else {
                return Err(format!(
                    "fieldPath must be a valid path: unclosed bracket in {field_path:?}"
                ));
            };
            name = &after[..end];
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            name = &after[..end];
            rest = &after[end..];
        } else {
            return Err(format!(
                "fieldPath must be a valid path: expected '.' or \"['\" at {rest:?}"
            ));
        }
        if name.is_empty() {
            return Err(format!(
                "fieldPath must be a valid path: empty field name in {field_path:?}"
            ));
        }
        if let Some(child) = current.properties.get(name) {
            steps.push(FieldStep::Prop(name.to_owned()));
            current = child;
        } else if let Additional::Schema(values) = &current.additional {
            steps.push(FieldStep::Key(name.to_owned()));
            current = values;
        } else {
            return Err(format!(
                "fieldPath must be a valid path: does not refer to a valid field: {name:?}"
            ));
        }
    }
    Ok(steps)
}

/// Runs every applicable rule in the object, appending failures to `out`.
pub(super) fn validate(root: &Node, obj: &Value, old: Option<&Value>, out: &mut Vec<FieldCause>) {
    let mut path = Vec::new();
    walk(root, obj, old, &mut path, out);
}

fn walk<'o>(
    node: &Node,
    value: &'o Value,
    old: Option<&'o Value>,
    path: &mut Vec<Seg<'o>>,
    out: &mut Vec<FieldCause>,
) {
    // The server only evaluates rules on values that are present and
    // non-null; rules about absence belong on the parent.
    if !node.rules_below || value.is_null() {
        return;
    }
    for rule in &node.rules {
        if rule.transition && old.is_none() && !rule.optional_old_self {
            continue;
        }
        if !rule.transition && old == Some(value) {
            continue;
        }
        run_rule(rule, node, value, old, path, out);
    }

    match value {
        Value::Object(map) => {
            let old_map = old.and_then(Value::as_object);
            for (key, child_value) in map {
                let child_old = old_map.and_then(|m| m.get(key));
                if let Some(child) = node.properties.get(key) {
                    path.push(Seg::Prop(key));
                    walk(child, child_value, child_old, path, out);
                    path.pop();
                } else if let Additional::Schema(child) = &node.additional {
                    path.push(Seg::Key(key));
                    walk(child, child_value, child_old, path, out);
                    path.pop();
                }
            }
        }
        Value::Array(items) => {
            let Some(item_node) = &node.items else {
                return;
            };
            let old_items = old.and_then(Value::as_array);
            for (i, item) in items.iter().enumerate() {
                let item_old = match (&node.list_type, old_items) {
                    (ListType::Map(keys), Some(old_items)) => {
                        correlate_by_keys(item, old_items, keys, item_node)
                    }
                    _ => None,
                };
                path.push(Seg::Index(i));
                walk(item_node, item, item_old, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The old element of a keyed list with the same key values as `item`.
pub(super) fn correlate_by_keys<'o>(
    item: &Value,
    old_items: &'o [Value],
    keys: &[String],
    item_node: &Node,
) -> Option<&'o Value> {
    let wanted = list_map_key(item, keys, item_node)?;
    old_items
        .iter()
        .find(|candidate| list_map_key(candidate, keys, item_node).as_ref() == Some(&wanted))
}

/// The key tuple of a keyed-list element, with schema defaults standing in
/// for missing keys as the server does; `None` when a key is unavailable.
pub(super) fn list_map_key<'a>(
    item: &'a Value,
    keys: &[String],
    item_node: &'a Node,
) -> Option<Vec<&'a Value>> {
    let map = item.as_object()?;
    keys.iter()
        .map(|k| {
            map.get(k).or_else(|| {
                item_node
                    .properties
                    .get(k)
                    .and_then(|child| child.default.as_ref())
            })
        })
        .collect()
}

fn run_rule(
    rule: &CelRule,
    node: &Node,
    value: &Value,
    old: Option<&Value>,
    path: &[Seg<'_>],
    out: &mut Vec<FieldCause>,
) {
    let old_arg = if rule.transition { old } else { None };
    let type_value = render::go_quote(&node.cel_type);
    // The CEL engine and its function libraries are third-party code run on
    // client-supplied values; a panic there must cost one rule, not the
    // request (or the emulator).
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        kube_cel::validate_compiled(&rule.program, value, old_arg)
    }));
    let errors = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(errors)) => errors,
        Err(_) => {
            out.push(render::invalid(
                render::field_path(path),
                &type_value,
                &format!("internal error evaluating rule: {}", rule.error_string()),
            ));
            return;
        }
    };
    // The rule's copy of the schema holds this one rule, so there is at most
    // one failure to translate.
    let Some(error) = errors.iter().next() else {
        return;
    };
    match error.kind {
        kube_cel::ErrorKind::ValidationFailure | kube_cel::ErrorKind::InvalidResult => {
            let detail = failure_detail(rule, error);
            let mut at: Vec<Seg<'_>> = path.to_vec();
            at.extend(rule.field_path.iter().map(|step| match step {
                FieldStep::Prop(name) => Seg::Prop(name),
                FieldStep::Key(name) => Seg::Key(name),
            }));
            let field = render::field_path(&at);
            out.push(match rule.reason {
                Reason::Invalid => render::invalid(field, &type_value, &detail),
                Reason::Forbidden => render::forbidden(field, &detail),
                Reason::Required => render::required(field, &detail),
                Reason::Duplicate => render::duplicate(field, &type_value),
            });
        }
        _ => {
            let field = render::field_path(path);
            out.push(render::invalid(
                field,
                &type_value,
                &evaluation_detail(rule, error),
            ));
        }
    }
}

/// The message of a failed rule: the message expression's result when it
/// produced a usable single line, else the static message, else the rule.
fn failure_detail(rule: &CelRule, error: &kube_cel::ValidationError) -> String {
    if rule.has_message_expression {
        let produced = error.message.trim();
        if !produced.is_empty() && !produced.contains('\n') {
            return produced.to_owned();
        }
    }
    rule.default_detail()
}

/// The server's wording for a rule that could not be evaluated.
fn evaluation_detail(rule: &CelRule, error: &kube_cel::ValidationError) -> String {
    let execution =
        std::error::Error::source(error).and_then(|source| source.downcast_ref::<ExecutionError>());
    let err_text = match execution {
        Some(ExecutionError::NoSuchOverload) => {
            return format!(
                "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {}",
                rule.error_string()
            );
        }
        Some(ExecutionError::NoSuchKey(key)) => format!("no such key: {key}"),
        Some(ExecutionError::UndeclaredReference(name)) => {
            format!("undeclared reference to '{name}'")
        }
        Some(other) => other.to_string(),
        None => error.message.clone(),
    };
    format!("{err_text} evaluating rule: {}", rule.error_string())
}
