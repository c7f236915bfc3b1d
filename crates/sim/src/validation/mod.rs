//! CRD schema handling for the emulator: what a real API server does with a
//! custom resource's `openAPIV3Schema` on every write.
//!
//! A CRD version's schema is compiled once ([`CompiledSchema::compile`]):
//! every keyword is parsed, every `pattern` becomes a regex and every
//! `x-kubernetes-validations` rule a CEL program, and anything the server
//! would refuse at CRD registration is refused here as a [`SchemaError`].
//! A write then goes through the server's steps:
//!
//! 1. [`CompiledSchema::apply_defaults`] fills `default`s (also into nulls
//!    of non-nullable fields);
//! 2. [`CompiledSchema::prune`] drops unknown fields (and reports them, for
//!    `fieldValidation=Strict|Warn`) and the non-nullable nulls no default
//!    replaced; the two steps give the same result in either order;
//! 3. [`CompiledSchema::validate`] returns the causes a real server would put
//!    in the `Status` of a 422: object metadata, OpenAPI checks, embedded
//!    resources, list invariants, then CEL rules, worded and addressed the
//!    way the server words and addresses them, so tests can compare messages
//!    verbatim. CEL rules are skipped, with the server's explanatory cause,
//!    when an earlier check already found a value of the wrong shape.
//!
//! Old values (on update) pair with new ones through properties, map keys
//! and keyed lists; they feed transition rules (`oldSelf`) and ratcheting,
//! under which unchanged values are not re-judged.

mod cel_rules;
mod defaults;
mod formats;
mod node;
mod prune;
mod render;
mod structural;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde_json::Value;

/// One field error, as the API server reports it in `Status.details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCause {
    /// `FieldValueNotSupported`, `FieldValueInvalid`, `FieldValueRequired`,
    /// `FieldValueTypeInvalid`, `FieldValueForbidden`, `FieldValueDuplicate`,
    /// `FieldValueTooLong`, `FieldValueTooMany`.
    pub reason: String,
    /// Dotted path from the object root, e.g. `spec.requirements.driver.kernelModule`.
    pub field: String,
    /// e.g. `Unsupported value: "Foo": supported values: "Enforce", "DryRun"`.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("compiling schema at {path}: {reason}")]
    Invalid { path: String, reason: String },
}

impl SchemaError {
    pub fn kind(&self) -> &'static str {
        match self {
            SchemaError::Invalid { .. } => "invalid_schema",
        }
    }
}

/// A CRD version's `openAPIV3Schema`, compiled once (regexes, CEL programs).
#[derive(Debug, Clone)]
pub struct CompiledSchema {
    // Shared because CEL programs cannot be copied and a schema is handed to
    // every request that writes the resource.
    root: Arc<node::Node>,
}

/// Cause reasons after which the server does not evaluate CEL rules: each
/// means some value has a shape the rules were not written for.
const BLOCKING_REASONS: [&str; 5] = [
    "FieldValueNotSupported",
    "FieldValueRequired",
    "FieldValueTooLong",
    "FieldValueTooMany",
    "FieldValueTypeInvalid",
];

/// What the server says instead of running CEL rules on a malformed object.
pub const RULES_NOT_CHECKED: &str = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

impl CompiledSchema {
    pub fn compile(openapi_v3_schema: &Value) -> Result<Self, SchemaError> {
        Ok(Self {
            root: Arc::new(node::compile_root(openapi_v3_schema)?),
        })
    }

    /// Whether any `x-kubernetes-validations` rule is declared.
    pub fn has_rules(&self) -> bool {
        self.root.rules_below
    }

    /// Validates a whole object (apiVersion, kind, metadata, spec, status);
    /// `old` is the stored object on update, for transition rules.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldCause> {
        let mut causes = Vec::new();
        let name = obj
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str);
        if name.is_none_or(str::is_empty) {
            causes.push(render::required(
                "metadata.name".to_owned(),
                "name or generateName is required",
            ));
        }

        let report = structural::validate(&self.root, obj, old);
        causes.extend(report.openapi);
        causes.extend(report.embedded);
        causes.extend(report.list_types);

        if self.root.rules_below {
            if causes
                .iter()
                .any(|c| BLOCKING_REASONS.contains(&c.reason.as_str()))
            {
                causes.push(render::invalid(
                    render::NIL_PATH.to_owned(),
                    &render::bad_value(&Value::Null),
                    RULES_NOT_CHECKED,
                ));
            } else {
                cel_rules::validate(&self.root, obj, old, &mut causes);
            }
        }
        causes
    }

    /// Removes fields the schema does not know (unless preserved); returns their paths.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        prune::prune(&self.root, obj)
    }

    /// Fills `default` values from the schema.
    pub fn apply_defaults(&self, obj: &mut Value) {
        defaults::apply(&self.root, obj);
    }
}
