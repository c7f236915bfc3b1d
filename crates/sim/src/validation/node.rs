//! The compiled form of one schema node, built once per CRD version.
//!
//! Every keyword is parsed and checked here so the per-request walks never
//! look at raw JSON, never re-parse a number and never compile a regex. A
//! keyword of the wrong JSON type is a compile error rather than something to
//! ignore: the real server refuses such a CRD, and a schema the emulator
//! silently half-understands would make tests pass that fail against a
//! cluster.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{Map, Value};

use super::SchemaError;
use super::cel_rules::{self, CelRule};
use super::formats::Format;

/// Deeper schemas than this are refused: no real CRD comes close, and the
/// bound keeps every recursive walk far from the stack limit.
const MAX_SCHEMA_DEPTH: usize = 128;

#[derive(Debug)]
pub(super) struct Pattern {
    /// The pattern as written, which is what error messages quote.
    pub(super) source: String,
    pub(super) regex: Regex,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Bound {
    pub(super) value: f64,
    pub(super) exclusive: bool,
}

#[derive(Debug)]
pub(super) enum Additional {
    /// No `additionalProperties`: unknown keys are pruned, not rejected.
    Absent,
    Bool(bool),
    Schema(Box<Node>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

#[derive(Debug)]
pub(super) struct Node {
    /// Allowed JSON type names; empty when the node does not constrain type.
    pub(super) types: Vec<&'static str>,
    /// The types joined with commas, as type errors print them.
    pub(super) type_label: String,
    /// The schema's own `type` (empty for int-or-string and untyped nodes),
    /// which CEL failures print as their "bad value".
    pub(super) cel_type: String,
    pub(super) nullable: bool,
    pub(super) format: Option<Format>,
    /// Name of the format as written, for messages.
    pub(super) format_name: String,
    pub(super) enum_values: Option<Vec<Value>>,
    pub(super) pattern: Option<Pattern>,
    pub(super) min_length: Option<u64>,
    pub(super) max_length: Option<u64>,
    pub(super) minimum: Option<Bound>,
    pub(super) maximum: Option<Bound>,
    pub(super) multiple_of: Option<f64>,
    pub(super) min_items: Option<u64>,
    pub(super) max_items: Option<u64>,
    pub(super) min_properties: Option<u64>,
    pub(super) max_properties: Option<u64>,
    pub(super) required: Vec<String>,
    pub(super) properties: BTreeMap<String, Node>,
    pub(super) additional: Additional,
    pub(super) items: Option<Box<Node>>,
    pub(super) all_of: Vec<Node>,
    pub(super) any_of: Vec<Node>,
    pub(super) one_of: Vec<Node>,
    pub(super) not: Option<Box<Node>>,
    pub(super) preserve_unknown: bool,
    pub(super) embedded: bool,
    pub(super) list_type: ListType,
    pub(super) default: Option<Value>,
    pub(super) rules: Vec<CelRule>,
    /// Whether this node or any node below it carries CEL rules, so the CEL
    /// walk can skip whole subtrees that have none.
    pub(super) rules_below: bool,
}

/// Where in the schema a node sits, for error paths and for the placement
/// restrictions the server enforces on CEL rules.
#[derive(Clone)]
struct Place {
    path: String,
    depth: usize,
    /// False below the items of a list that is not `list-type: map`: such
    /// items cannot be paired with their previous version, so transition
    /// rules there are rejected.
    correlatable: bool,
    /// True inside `allOf`/`anyOf`/`oneOf`/`not`.
    in_junctor: bool,
}

impl Place {
    fn child(&self, suffix: &str) -> Place {
        Place {
            path: format!("{}{suffix}", self.path),
            depth: self.depth + 1,
            correlatable: self.correlatable,
            in_junctor: self.in_junctor,
        }
    }

    fn err(&self, keyword: &str, reason: impl Into<String>) -> SchemaError {
        SchemaError::Invalid {
            path: if keyword.is_empty() {
                self.path.clone()
            } else {
                format!("{}.{keyword}", self.path)
            },
            reason: reason.into(),
        }
    }
}

/// Compiles a CRD version's `openAPIV3Schema`; error paths start at
/// `openAPIV3Schema` so callers can prefix the CRD field they came from.
pub(super) fn compile_root(schema: &Value) -> Result<Node, SchemaError> {
    let place = Place {
        path: "openAPIV3Schema".to_owned(),
        depth: 0,
        correlatable: true,
        in_junctor: false,
    };
    compile_node(schema, &place)
}

fn compile_node(raw: &Value, place: &Place) -> Result<Node, SchemaError> {
    if place.depth > MAX_SCHEMA_DEPTH {
        return Err(place.err(
            "",
            format!("schema is nested deeper than {MAX_SCHEMA_DEPTH} levels"),
        ));
    }
    let Some(map) = raw.as_object() else {
        return Err(place.err("", "must be an object"));
    };

    let int_or_string = get_bool(map, "x-kubernetes-int-or-string", place)?;
    let declared_type = match map.get("type") {
        None => None,
        Some(Value::String(t)) if t.is_empty() => None,
        Some(Value::String(t)) => Some(t.as_str()),
        Some(_) => return Err(place.err("type", "must be a string")),
    };
    let types: Vec<&'static str> = match (declared_type, int_or_string) {
        (Some(_), true) => {
            return Err(place.err("type", "must be empty when x-kubernetes-int-or-string is true"));
        }
        (None, true) => vec!["integer", "string"],
        (None, false) => Vec::new(),
        (Some(t), false) => vec![known_type(t).ok_or_else(|| {
            place.err(
                "type",
                format!(
                    "Unsupported value: \"{t}\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""
                ),
            )
        })?],
    };

    let format_name = match map.get("format") {
        None => String::new(),
        Some(Value::String(f)) => f.clone(),
        Some(_) => return Err(place.err("format", "must be a string")),
    };

    let enum_values = match map.get("enum") {
        None => None,
        Some(Value::Array(values)) => Some(values.clone()),
        Some(_) => return Err(place.err("enum", "must be an array")),
    };

    let pattern = match map.get("pattern") {
        None => None,
        Some(Value::String(source)) => {
            let regex = Regex::new(source).map_err(|e| {
                place.err(
                    "pattern",
                    format!("unsupported regular expression {source:?}: {e}"),
                )
            })?;
            Some(Pattern {
                source: source.clone(),
                regex,
            })
        }
        Some(_) => return Err(place.err("pattern", "must be a string")),
    };

    if get_bool(map, "uniqueItems", place)? {
        return Err(place.err(
            "uniqueItems",
            "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }

    let minimum = get_f64(map, "minimum", place)?.map(|value| Bound {
        value,
        exclusive: false,
    });
    let maximum = get_f64(map, "maximum", place)?.map(|value| Bound {
        value,
        exclusive: false,
    });
    let exclusive_min = get_bool(map, "exclusiveMinimum", place)?;
    let exclusive_max = get_bool(map, "exclusiveMaximum", place)?;
    let multiple_of = get_f64(map, "multipleOf", place)?;
    if multiple_of.is_some_and(|m| m <= 0.0) {
        return Err(place.err("multipleOf", "must be greater than zero"));
    }

    let required = match map.get("required") {
        None => Vec::new(),
        Some(Value::Array(names)) => names
            .iter()
            .map(|n| {
                n.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| place.err("required", "must be an array of strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(place.err("required", "must be an array of strings")),
    };

    let mut properties = BTreeMap::new();
    match map.get("properties") {
        None => {}
        Some(Value::Object(props)) => {
            for (name, prop) in props {
                let child = compile_node(prop, &place.child(&format!(".properties[{name}]")))?;
                properties.insert(name.clone(), child);
            }
        }
        Some(_) => return Err(place.err("properties", "must be an object")),
    }

    let additional = match map.get("additionalProperties") {
        None => Additional::Absent,
        Some(Value::Bool(b)) => Additional::Bool(*b),
        Some(schema @ Value::Object(_)) => {
            if !properties.is_empty() {
                return Err(place.err(
                    "additionalProperties",
                    "Forbidden: additionalProperties and properties are mutual exclusive",
                ));
            }
            Additional::Schema(Box::new(compile_node(
                schema,
                &place.child(".additionalProperties"),
            )?))
        }
        Some(_) => return Err(place.err("additionalProperties", "must be a boolean or an object")),
    };

    let list_type = match map.get("x-kubernetes-list-type") {
        None => ListType::Atomic,
        Some(Value::String(t)) => match t.as_str() {
            "atomic" => ListType::Atomic,
            "set" => ListType::Set,
            "map" => ListType::Map(list_map_keys(map, place)?),
            other => {
                return Err(place.err(
                    "x-kubernetes-list-type",
                    format!(
                        "Unsupported value: \"{other}\": supported values: \"atomic\", \"set\", \"map\""
                    ),
                ));
            }
        },
        Some(_) => return Err(place.err("x-kubernetes-list-type", "must be a string")),
    };
    if map.contains_key("x-kubernetes-list-map-keys") && !matches!(list_type, ListType::Map(_)) {
        return Err(place.err(
            "x-kubernetes-list-map-keys",
            "Forbidden: must not be set if x-kubernetes-list-type is not map",
        ));
    }

    let items = match map.get("items") {
        None => None,
        Some(schema @ Value::Object(_)) => {
            let mut item_place = place.child(".items");
            // Only keyed lists let the server pair an item with its previous
            // version; anywhere else below here oldSelf has no meaning.
            if !matches!(list_type, ListType::Map(_)) {
                item_place.correlatable = false;
            }
            Some(Box::new(compile_node(schema, &item_place)?))
        }
        Some(_) => return Err(place.err("items", "must be a single schema object")),
    };
    if let (ListType::Map(keys), Some(item)) = (&list_type, &items) {
        for key in keys {
            if !item.properties.contains_key(key) {
                return Err(place.err(
                    "x-kubernetes-list-map-keys",
                    format!(
                        "Invalid value: \"{key}\": entries must all be names of item properties"
                    ),
                ));
            }
        }
    }

    let mut junctor_place = place.clone();
    junctor_place.in_junctor = true;
    let all_of = compile_junctor(map, "allOf", &junctor_place)?;
    let any_of = compile_junctor(map, "anyOf", &junctor_place)?;
    let one_of = compile_junctor(map, "oneOf", &junctor_place)?;
    let not = match map.get("not") {
        None => None,
        Some(schema) => Some(Box::new(compile_node(
            schema,
            &junctor_place.child(".not"),
        )?)),
    };

    let mut node = Node {
        type_label: types.join(","),
        cel_type: declared_type.unwrap_or_default().to_owned(),
        types,
        nullable: get_bool(map, "nullable", place)?,
        format: Format::from_name(&format_name),
        format_name,
        enum_values,
        pattern,
        min_length: get_u64(map, "minLength", place)?,
        max_length: get_u64(map, "maxLength", place)?,
        minimum: minimum.map(|b| Bound {
            exclusive: exclusive_min,
            ..b
        }),
        maximum: maximum.map(|b| Bound {
            exclusive: exclusive_max,
            ..b
        }),
        multiple_of,
        min_items: get_u64(map, "minItems", place)?,
        max_items: get_u64(map, "maxItems", place)?,
        min_properties: get_u64(map, "minProperties", place)?,
        max_properties: get_u64(map, "maxProperties", place)?,
        required,
        properties,
        additional,
        items,
        all_of,
        any_of,
        one_of,
        not,
        preserve_unknown: get_bool(map, "x-kubernetes-preserve-unknown-fields", place)?,
        embedded: get_bool(map, "x-kubernetes-embedded-resource", place)?,
        list_type,
        default: map.get("default").cloned(),
        rules: Vec::new(),
        rules_below: false,
    };

    if map.contains_key("x-kubernetes-validations") && place.in_junctor {
        return Err(place.err(
            "x-kubernetes-validations",
            "Forbidden: must not be used inside allOf, anyOf, oneOf or not",
        ));
    }
    // Rules are compiled after the children so a rule's fieldPath can be
    // checked against the compiled subtree.
    node.rules = cel_rules::compile_rules(raw, &node, &place.path, place.correlatable)?;
    node.rules_below = !node.rules.is_empty()
        || node.properties.values().any(|c| c.rules_below)
        || node.items.as_ref().is_some_and(|c| c.rules_below)
        || matches!(&node.additional, Additional::Schema(c) if c.rules_below);
    Ok(node)
}

fn known_type(t: &str) -> Option<&'static str> {
    Some(match t {
        "object" => "object",
        "array" => "array",
        "string" => "string",
        "integer" => "integer",
        "number" => "number",
        "boolean" => "boolean",
        _ => return None,
    })
}

fn list_map_keys(map: &Map<String, Value>, place: &Place) -> Result<Vec<String>, SchemaError> {
    let keys = match map.get("x-kubernetes-list-map-keys") {
        Some(Value::Array(keys)) => keys
            .iter()
            .map(|k| k.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>(),
        _ => None,
    };
    match keys {
        Some(keys) if !keys.is_empty() => Ok(keys),
        _ => Err(place.err(
            "x-kubernetes-list-map-keys",
            "Required value: must be a non-empty array of strings if x-kubernetes-list-type is map",
        )),
    }
}

fn compile_junctor(
    map: &Map<String, Value>,
    keyword: &str,
    place: &Place,
) -> Result<Vec<Node>, SchemaError> {
    match map.get(keyword) {
        None => Ok(Vec::new()),
        Some(Value::Array(branches)) => branches
            .iter()
            .enumerate()
            .map(|(i, b)| compile_node(b, &place.child(&format!(".{keyword}[{i}]"))))
            .collect(),
        Some(_) => Err(place.err(keyword, "must be an array of schemas")),
    }
}

fn get_bool(map: &Map<String, Value>, key: &str, place: &Place) -> Result<bool, SchemaError> {
    match map.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(place.err(key, "must be a boolean")),
    }
}

fn get_u64(map: &Map<String, Value>, key: &str, place: &Place) -> Result<Option<u64>, SchemaError> {
    match map.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| place.err(key, "must be a non-negative integer")),
    }
}

fn get_f64(map: &Map<String, Value>, key: &str, place: &Place) -> Result<Option<f64>, SchemaError> {
    match map.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| place.err(key, "must be a number")),
    }
}
