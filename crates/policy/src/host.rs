//! Policies as files, and a single host as a pool of one: what
//! `plumbline check --policy` needs.

use std::sync::OnceLock;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResourceExt;
use plumbline_api::keys;
use plumbline_api::{
    CdiRequirements, ContainerToolkitRequirements, DriverRequirements, FabricManagerRequirement,
    GpuFleetPolicy, GpuFleetPolicySpec, KernelModuleRequirement, NodeGpuBaselineStatus, Observed,
    ProbeResult, Requirements, RuntimeRequirement, ToolkitRequirements, Verdict, VerdictState,
};
use plumbline_compat::CompatDb;
use serde_json::Value;

use crate::evaluate::{EvalInput, evaluate};
use crate::fleet::FleetView;
use crate::validate::{FieldError, validate_policy};

/// Name of the built-in policy.
pub const DEFAULT_POLICY_NAME: &str = "plumbline-default";

/// Exit code: every rule holds.
pub const EXIT_COMPLIANT: u8 = 0;
/// Exit code: at least one rule fails.
pub const EXIT_DRIFTING: u8 = 1;
/// Exit code: bad usage or input (a policy file that does not parse).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the host's state cannot be told.
pub const EXIT_UNKNOWN: u8 = 3;

/// Why a policy file was refused. Every message starts with the file name
/// and names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyFileError {
    /// The text is not YAML (or not one YAML document).
    #[error("{file}: {message}")]
    Yaml { file: String, message: String },
    /// The document does not have the shape of a `GpuFleetPolicy`.
    #[error("{}", render(file, errors))]
    Schema {
        file: String,
        errors: Vec<FieldError>,
    },
    /// The policy has the right shape but fails validation.
    #[error("{}", render(file, errors))]
    Invalid {
        file: String,
        errors: Vec<FieldError>,
    },
}

fn render(file: &str, errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{file}: {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl PolicyFileError {
    /// Stable short name for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyFileError::Yaml { .. } => "yaml",
            PolicyFileError::Schema { .. } => "schema",
            PolicyFileError::Invalid { .. } => "invalid",
        }
    }

    /// The field errors, when the problem is in fields.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            PolicyFileError::Yaml { .. } => &[],
            PolicyFileError::Schema { errors, .. } | PolicyFileError::Invalid { errors, .. } => {
                errors
            }
        }
    }
}

/// The built-in sanity policy for `plumbline check` without `--policy`:
/// a driver is loaded, with no pending-reboot mismatch and the module
/// flavour its GPUs need; no GPU is beyond the driver's support; no host
/// toolkit is newer than the driver's CUDA ceiling; the Container Toolkit
/// is installed with the nvidia handler in at least one engine; CDI specs,
/// where present, are fresh; Fabric Manager runs at the driver's version
/// where NVSwitches are present.
pub fn default_policy() -> GpuFleetPolicy {
    let spec = GpuFleetPolicySpec {
        requirements: Requirements {
            driver: Some(DriverRequirements {
                kernel_module: Some(KernelModuleRequirement::Auto),
                allow_mismatch: false,
                ..DriverRequirements::default()
            }),
            toolkit: Some(ToolkitRequirements {
                not_newer_than_driver: true,
                ..ToolkitRequirements::default()
            }),
            container_toolkit: Some(ContainerToolkitRequirements {
                runtime: Some(RuntimeRequirement::Any),
                ..ContainerToolkitRequirements::default()
            }),
            cdi: Some(CdiRequirements {
                required: false,
                require_fresh: true,
            }),
            fabric_manager: Some(FabricManagerRequirement::Auto),
            ..Requirements::default()
        },
        ..GpuFleetPolicySpec::default()
    };
    GpuFleetPolicy::new(DEFAULT_POLICY_NAME, spec)
}

/// Parses a `GpuFleetPolicy` from YAML (or JSON), checks its shape against
/// the CRD schema (unknown fields, enum values, types: what the API server
/// would refuse) and validates it. `file` names the text in errors.
pub fn parse_policy(text: &str, file: &str) -> Result<GpuFleetPolicy, PolicyFileError> {
    let value: Value = serde_saphyr::from_str(text).map_err(|e| PolicyFileError::Yaml {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    let schema_errors = check_document(&value);
    if !schema_errors.is_empty() {
        return Err(PolicyFileError::Schema {
            file: file.to_string(),
            errors: schema_errors,
        });
    }
    let policy: GpuFleetPolicy =
        serde_json::from_value(value).map_err(|e| PolicyFileError::Schema {
            file: file.to_string(),
            errors: vec![FieldError::new("spec", e.to_string())],
        })?;
    validate_policy(&policy.spec).map_err(|errors| PolicyFileError::Invalid {
        file: file.to_string(),
        errors,
    })?;
    Ok(policy)
}

/// Evaluates one host against a policy, as a pool of one (uniformity holds
/// trivially) with a heartbeat of `now`.
pub fn evaluate_host(
    policy: &GpuFleetPolicy,
    observed: &Observed,
    probes: &[ProbeResult],
    now: Timestamp,
    compat: &CompatDb,
) -> Verdict {
    let status = NodeGpuBaselineStatus {
        observed: Some(observed.clone()),
        probes: probes.to_vec(),
        last_heartbeat_time: Some(Time(now)),
        ..NodeGpuBaselineStatus::default()
    };
    let fleet = FleetView::from_statuses(&policy.spec.requirements.uniformity, [&status]);
    let name = policy
        .metadata
        .name
        .as_deref()
        .unwrap_or(DEFAULT_POLICY_NAME);
    evaluate(&EvalInput {
        policy_name: name,
        spec: &policy.spec,
        baseline: Some(&status),
        fleet: &fleet,
        now,
        compat,
        conflicting_policies: &[],
    })
}

/// `plumbline check`'s exit code for a verdict: 0 compliant, 1 drifting,
/// 3 unknown. `Unmanaged` never comes out of [`evaluate_host`]; it maps to
/// 3 because a host that was not judged must not pass a gate. (2 is for
/// usage and input errors, [`EXIT_USAGE`].)
pub fn exit_code(state: &VerdictState) -> u8 {
    match state {
        VerdictState::Compliant => EXIT_COMPLIANT,
        VerdictState::Drifting => EXIT_DRIFTING,
        VerdictState::Unknown | VerdictState::Unmanaged => EXIT_UNKNOWN,
    }
}

// -- shape check against the CRD schema ---------------------------------------

fn spec_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let crd = GpuFleetPolicy::crd();
        let schema = crd
            .spec
            .versions
            .first()
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null);
        schema
            .get("properties")
            .and_then(|p| p.get("spec"))
            .cloned()
            .unwrap_or(Value::Null)
    })
}

fn check_document(doc: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(root) = doc.as_object() else {
        return vec![FieldError::new(
            "(document)",
            format!("expected a GpuFleetPolicy object, found {}", describe(doc)),
        )];
    };
    for key in root.keys() {
        if !["apiVersion", "kind", "metadata", "spec", "status"].contains(&key.as_str()) {
            errors.push(FieldError::new(
                key.clone(),
                "unknown field, expected one of apiVersion, kind, metadata, spec",
            ));
        }
    }
    match root.get("apiVersion").and_then(Value::as_str) {
        Some(keys::API_VERSION) => {}
        other => errors.push(FieldError::new(
            "apiVersion",
            format!(
                "expected {}, found {}",
                keys::API_VERSION,
                other.map_or_else(|| "nothing".to_string(), |s| format!("{s:?}"))
            ),
        )),
    }
    match root.get("kind").and_then(Value::as_str) {
        Some("GpuFleetPolicy") => {}
        other => errors.push(FieldError::new(
            "kind",
            format!(
                "expected GpuFleetPolicy, found {}",
                other.map_or_else(|| "nothing".to_string(), |s| format!("{s:?}"))
            ),
        )),
    }
    match root
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
    {
        Some(name) if !name.is_empty() => {}
        _ => errors.push(FieldError::new("metadata.name", "a policy needs a name")),
    }
    match root.get("spec") {
        None => errors.push(FieldError::new(
            "spec",
            "missing; a policy needs a spec (`spec: {}` checks nothing)",
        )),
        Some(spec) => check_value(spec, spec_schema(), "spec", &mut errors),
    }
    errors
}

/// The values of a policy enum in the order the type declares them (the
/// schema generator moves documented variants to the end), so an error
/// lists them as the reference documentation does.
fn declared_order<'a>(names: &[&'a str]) -> Vec<&'a str> {
    use plumbline_api::{
        Action, FabricManagerRequirement, PolicyMode, RuntimeRequirement, SecureBootRequirement,
        TaintEffect, UniformityKey,
    };
    fn names_of<T: serde::Serialize>(values: &[T]) -> Vec<String> {
        values
            .iter()
            .filter_map(|v| serde_json::to_value(v).ok())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }
    let known = [
        names_of(&[
            KernelModuleRequirement::Auto,
            KernelModuleRequirement::Open,
            KernelModuleRequirement::Proprietary,
            KernelModuleRequirement::Any,
        ]),
        names_of(&[
            RuntimeRequirement::Containerd,
            RuntimeRequirement::Docker,
            RuntimeRequirement::Crio,
            RuntimeRequirement::Any,
        ]),
        names_of(&[
            SecureBootRequirement::Any,
            SecureBootRequirement::Required,
            SecureBootRequirement::Disabled,
        ]),
        names_of(&[
            FabricManagerRequirement::Auto,
            FabricManagerRequirement::Required,
            FabricManagerRequirement::Ignore,
        ]),
        names_of(&[
            UniformityKey::DriverVersion,
            UniformityKey::KernelModule,
            UniformityKey::ContainerToolkitVersion,
            UniformityKey::ToolkitVersions,
            UniformityKey::KernelRelease,
        ]),
        names_of(&[
            Action::Label,
            Action::Condition,
            Action::Taint,
            Action::Cordon,
        ]),
        names_of(&[
            TaintEffect::NoSchedule,
            TaintEffect::PreferNoSchedule,
            TaintEffect::NoExecute,
        ]),
        names_of(&[PolicyMode::Enforce, PolicyMode::DryRun]),
    ];
    for order in known {
        if order.len() == names.len() && order.iter().all(|o| names.contains(&o.as_str())) {
            return order
                .iter()
                .filter_map(|o| names.iter().find(|n| **n == o.as_str()).copied())
                .collect();
        }
    }
    names.to_vec()
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
    }
}

fn check_value(value: &Value, schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if schema.is_null() {
        return;
    }
    if value.is_null() {
        let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
        if !nullable && schema.get("default").is_none() {
            errors.push(FieldError::new(path, "must not be null"));
        }
        return;
    }
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            errors.push(FieldError::new(
                path,
                format!(
                    "expected an integer or a string such as \"10%\", found {}",
                    describe(value)
                ),
            ));
        }
        return;
    }
    let Some(kind) = schema.get("type").and_then(Value::as_str) else {
        return;
    };
    match kind {
        "object" => {
            let Some(map) = value.as_object() else {
                errors.push(FieldError::new(
                    path,
                    format!("expected a mapping, found {}", describe(value)),
                ));
                return;
            };
            for key in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(key) {
                    errors.push(FieldError::new(
                        format!("{path}.{key}"),
                        "missing; this field is required",
                    ));
                }
            }
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (key, child) in map {
                    let at = format!("{path}.{key}");
                    match props.get(key) {
                        Some(s) => check_value(child, s, &at, errors),
                        None => {
                            let known: Vec<&str> = props.keys().map(String::as_str).collect();
                            errors.push(FieldError::new(
                                at,
                                format!("unknown field, expected one of {}", known.join(", ")),
                            ));
                        }
                    }
                }
            } else if let Some(extra) = schema.get("additionalProperties").filter(|s| s.is_object())
            {
                for (key, child) in map {
                    check_value(child, extra, &format!("{path}.{key}"), errors);
                }
            }
        }
        "array" => {
            let Some(items) = value.as_array() else {
                errors.push(FieldError::new(
                    path,
                    format!("expected a list, found {}", describe(value)),
                ));
                return;
            };
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_value(item, item_schema, &format!("{path}[{i}]"), errors);
                }
            }
        }
        "string" => {
            let Some(text) = value.as_str() else {
                let hint = if value.is_number() {
                    format!("; quote it (\"{value}\") so YAML keeps it as written")
                } else {
                    String::new()
                };
                errors.push(FieldError::new(
                    path,
                    format!("expected a string, found {}{hint}", describe(value)),
                ));
                return;
            };
            if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
                let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                if !names.contains(&text) {
                    let names = declared_order(&names);
                    errors.push(FieldError::new(
                        path,
                        format!(
                            "unknown value {text:?}, expected one of {}",
                            names.join(", ")
                        ),
                    ));
                }
            }
            if schema.get("format").and_then(Value::as_str) == Some("date-time")
                && text.parse::<Timestamp>().is_err()
            {
                errors.push(FieldError::new(
                    path,
                    format!("{text:?} is not an RFC 3339 time such as \"2026-12-01T00:00:00Z\""),
                ));
            }
        }
        "integer" => {
            let ok = match schema.get("format").and_then(Value::as_str) {
                Some("uint32") => value.as_u64().is_some_and(|n| u32::try_from(n).is_ok()),
                Some("int32") => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
                _ => value.is_i64() || value.is_u64(),
            };
            if !ok {
                errors.push(FieldError::new(
                    path,
                    format!("expected an integer in range, found {}", describe(value)),
                ));
            }
        }
        "boolean" if !value.is_boolean() => {
            errors.push(FieldError::new(
                path,
                format!("expected true or false, found {}", describe(value)),
            ));
        }
        _ => {}
    }
}
