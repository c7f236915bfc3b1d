//! How the API server spells paths and values in its error messages.
//!
//! Two path spellings coexist in a real server's answers, and clients (and our
//! tests) compare them verbatim: the OpenAPI validator builds plain strings
//! (`spec.list[0].map.key`), while the hand-written validators (CEL, list
//! types, embedded resources) use `field.Path` (`spec.list[0].map[key]`).
//! Values are printed the way Go's `fmt` prints the decoded JSON.

use serde_json::Value;

use super::FieldCause;

/// One step from a parent value to a child, borrowed from the object being
/// walked so a path costs nothing until an error needs it rendered.
#[derive(Debug, Clone, Copy)]
pub(super) enum Seg<'a> {
    /// A declared property of an object.
    Prop(&'a str),
    /// A list element.
    Index(usize),
    /// A key of a map (an object validated by `additionalProperties`).
    Key(&'a str),
}

/// What `field.Path.String()` prints for the empty path.
pub(super) const NIL_PATH: &str = "<nil>";

/// The `field.Path` spelling: `a.b[0][key]`, `<nil>` for the root.
pub(super) fn field_path(segs: &[Seg<'_>]) -> String {
    if segs.is_empty() {
        return NIL_PATH.to_owned();
    }
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Prop(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
            Seg::Key(key) => {
                out.push('[');
                out.push_str(key);
                out.push(']');
            }
        }
    }
    out
}

/// The kube-openapi spelling used inside messages (`<name> in body ...`):
/// properties are joined with dots unless they start the path, map keys are
/// always prefixed with a dot (so a root-level key renders as `.key`), list
/// indexes are bracketed.
pub(super) fn openapi_name(segs: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Prop(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
            Seg::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
        }
    }
    out
}

/// The `field` of a cause built from a kube-openapi error: the server makes
/// the name a single path element after trimming one leading dot, and an empty
/// name leaves the path nil.
pub(super) fn openapi_field(name: &str) -> String {
    let trimmed = name.strip_prefix('.').unwrap_or(name);
    if trimmed.is_empty() {
        NIL_PATH.to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The spelling of unknown-field paths reported by pruning: every key is a
/// dotted child, list indexes are bracketed.
pub(super) fn pruned_path(segs: &[Seg<'_>], key: &str) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Prop(name) | Seg::Key(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(key);
    out
}

/// JSON type name of a value, as kube-openapi infers it from decoded data.
pub(super) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Go's `strconv.Quote`, which `%q` uses.
pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%v` for a float64: the shortest representation that round-trips,
/// switching to an exponent below 1e-4 and from 1e21 on.
pub(super) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..21).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        format!("{f}")
    }
}

/// A JSON number the way Go prints the int64 or float64 it decodes to.
pub(super) fn go_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        go_float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Go's `%#v` of a decoded JSON value held in an `interface{}`.
fn go_syntax(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("interface {}(nil)"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_number(n)),
        Value::String(s) => out.push_str(&go_quote(s)),
        Value::Array(items) => {
            out.push_str("[]interface {}{");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                go_syntax(item, out);
            }
            out.push('}');
        }
        Value::Object(map) => {
            // serde_json's default map is ordered by key, like Go's fmt.
            out.push_str("map[string]interface {}{");
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&go_quote(k));
                out.push(':');
                go_syntax(v, out);
            }
            out.push('}');
        }
    }
}

/// The bad value as `field.Error.ErrorBody` prints it: strings quoted, simple
/// types bare, nil as `"null"`, composites in Go syntax.
pub(super) fn bad_value(value: &Value) -> String {
    match value {
        Value::Null => go_quote("null"),
        Value::String(s) => go_quote(s),
        other => {
            let mut out = String::new();
            go_syntax(other, &mut out);
            out
        }
    }
}

/// `field.Invalid`: `Invalid value: <value>: <detail>`.
pub(super) fn invalid(field: String, value: &str, detail: &str) -> FieldCause {
    FieldCause {
        reason: "FieldValueInvalid".to_owned(),
        field,
        message: with_detail(format!("Invalid value: {value}"), detail),
    }
}

/// `field.TypeInvalid`: same body as `Invalid`, different reason.
pub(super) fn type_invalid(field: String, value: &str, detail: &str) -> FieldCause {
    FieldCause {
        reason: "FieldValueTypeInvalid".to_owned(),
        field,
        message: with_detail(format!("Invalid value: {value}"), detail),
    }
}

/// `field.Required`: the value is never printed.
pub(super) fn required(field: String, detail: &str) -> FieldCause {
    FieldCause {
        reason: "FieldValueRequired".to_owned(),
        field,
        message: with_detail("Required value".to_owned(), detail),
    }
}

/// `field.Forbidden`: the value is never printed.
pub(super) fn forbidden(field: String, detail: &str) -> FieldCause {
    FieldCause {
        reason: "FieldValueForbidden".to_owned(),
        field,
        message: with_detail("Forbidden".to_owned(), detail),
    }
}

/// `field.Duplicate`: the duplicated value, no detail.
pub(super) fn duplicate(field: String, value: &str) -> FieldCause {
    FieldCause {
        reason: "FieldValueDuplicate".to_owned(),
        field,
        message: format!("Duplicate value: {value}"),
    }
}

/// `field.NotSupported` with the allowed values quoted.
pub(super) fn not_supported(field: String, value: &str, allowed: &[String]) -> FieldCause {
    let quoted: Vec<String> = allowed.iter().map(|v| go_quote(v)).collect();
    let detail = if quoted.is_empty() {
        String::new()
    } else {
        format!("supported values: {}", quoted.join(", "))
    };
    FieldCause {
        reason: "FieldValueNotSupported".to_owned(),
        field,
        message: with_detail(format!("Unsupported value: {value}"), &detail),
    }
}

/// `field.TooLong`: the value is omitted from the message.
pub(super) fn too_long(field: String, max: u64) -> FieldCause {
    let unit = if max == 1 { "byte" } else { "bytes" };
    FieldCause {
        reason: "FieldValueTooLong".to_owned(),
        field,
        message: format!("Too long: may not be more than {max} {unit}"),
    }
}

/// `field.TooMany`: the actual count is printed as the value.
pub(super) fn too_many(field: String, actual: usize, max: u64) -> FieldCause {
    let unit = if max == 1 { "item" } else { "items" };
    FieldCause {
        reason: "FieldValueTooMany".to_owned(),
        field,
        message: format!("Too many: {actual}: must have at most {max} {unit}"),
    }
}

fn with_detail(mut body: String, detail: &str) -> String {
    if !detail.is_empty() {
        body.push_str(": ");
        body.push_str(detail);
    }
    body
}
