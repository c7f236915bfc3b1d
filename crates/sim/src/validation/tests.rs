//! Table tests against a policy-like CRD, plus compile errors, pruning,
//! defaulting and a property test that no input makes the walks panic.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{CompiledSchema, FieldCause, RULES_NOT_CHECKED};

/// A GPU node policy in the shape Plumbline's CRDs take, exercising every
/// keyword the module supports.
fn policy_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["nodeName"],
                "x-kubernetes-validations": [{
                    "rule": "!has(self.onDrift) || !self.onDrift.exists(a, a == 'Cordon') || has(self.maxUnavailable)",
                    "message": "Cordon needs maxUnavailable"
                }],
                "properties": {
                    "nodeName": {
                        "type": "string",
                        "maxLength": 63,
                        "x-kubernetes-validations": [{
                            "rule": "!format.dns1123Label().validate(self).hasValue()",
                            "message": "must be a DNS-1123 label"
                        }]
                    },
                    "mode": {"type": "string", "enum": ["Enforce", "DryRun"], "default": "DryRun"},
                    "priority": {"type": "integer", "minimum": 1, "maximum": 100},
                    "weight": {
                        "type": "number",
                        "minimum": 0,
                        "exclusiveMinimum": true,
                        "maximum": 10,
                        "exclusiveMaximum": true,
                        "multipleOf": 0.5
                    },
                    "paused": {"type": "boolean"},
                    "since": {"type": "string", "format": "date"},
                    "onDrift": {
                        "type": "array",
                        "maxItems": 3,
                        "x-kubernetes-list-type": "set",
                        "items": {"type": "string", "enum": ["Alert", "Cordon", "Taint"]}
                    },
                    "maxUnavailable": {
                        "x-kubernetes-int-or-string": true,
                        "x-kubernetes-validations": [{
                            "rule": "string(self).matches('^[0-9]+%?$')",
                            "message": "must be a count or a percentage"
                        }]
                    },
                    "requirements": {
                        "type": "object",
                        "properties": {
                            "driver": {
                                "type": "object",
                                "default": {},
                                "properties": {
                                    "versions": {
                                        "type": "array",
                                        "minItems": 1,
                                        "items": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+){1,2}$"}
                                    },
                                    "branch": {"type": "string", "default": "production", "minLength": 3}
                                }
                            },
                            "memory": {
                                "type": "string",
                                "x-kubernetes-validations": [{
                                    "rule": "quantity(self).isGreaterThan(quantity('1Gi'))",
                                    "message": "memory must exceed 1Gi"
                                }]
                            },
                            "kernelModules": {
                                "type": "array",
                                "x-kubernetes-list-type": "map",
                                "x-kubernetes-list-map-keys": ["name"],
                                "items": {
                                    "type": "object",
                                    "required": ["name"],
                                    "properties": {
                                        "name": {"type": "string"},
                                        "params": {"type": "string"}
                                    },
                                    "x-kubernetes-validations": [{
                                        "rule": "!has(oldSelf.params) || has(self.params)",
                                        "message": "params cannot be removed"
                                    }]
                                }
                            }
                        }
                    },
                    "labels": {
                        "type": "object",
                        "maxProperties": 3,
                        "additionalProperties": {"type": "string", "maxLength": 5}
                    },
                    "window": {
                        "type": "object",
                        "properties": {
                            "start": {"type": "string", "format": "date-time"},
                            "end": {"type": "string", "format": "date-time"}
                        },
                        "x-kubernetes-validations": [{
                            "rule": "!has(self.start) || !has(self.end) || self.start < self.end",
                            "message": "start must precede end",
                            "fieldPath": ".end"
                        }]
                    },
                    "selector": {
                        "type": "string",
                        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "selector is immutable"}]
                    },
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": true,
                        "x-kubernetes-preserve-unknown-fields": true
                    },
                    "extra": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"known": {"type": "string"}}
                    },
                    "contact": {"type": "string", "nullable": true},
                    "url": {
                        "type": "string",
                        "x-kubernetes-validations": [{
                            "rule": "isURL(self)",
                            "messageExpression": "'not a URL: ' + self",
                            "reason": "FieldValueForbidden"
                        }]
                    },
                    "targets": {
                        "type": "array",
                        "x-kubernetes-validations": [{
                            "rule": "self.all(t, !has(t.count) || t.count < 1000)",
                            "message": "counts must stay below 1000"
                        }],
                        "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "count": {"type": "integer"}},
                            "x-kubernetes-validations": [{"rule": "!has(self.count) || self.count > 0"}]
                        }
                    },
                    "tolerations": {
                        "type": "object",
                        "minProperties": 1,
                        "properties": {"key": {"type": "string", "enum": ["gpu"]}}
                    },
                    "address": {"type": "string", "format": "ipv4"}
                }
            },
            "status": {
                "type": "object",
                "properties": {"phase": {"type": "string"}}
            }
        }
    })
}

fn schema() -> CompiledSchema {
    CompiledSchema::compile(&policy_schema()).expect("the test schema compiles")
}

fn object(spec: Value) -> Value {
    json!({
        "apiVersion": "plumbline.dev/v1alpha1",
        "kind": "NodePolicy",
        "metadata": {"name": "gpu-a100"},
        "spec": spec
    })
}

fn cause(reason: &str, field: &str, message: &str) -> FieldCause {
    FieldCause {
        reason: reason.to_owned(),
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

struct Case {
    desc: &'static str,
    spec: Value,
    old_spec: Option<Value>,
    want: Vec<FieldCause>,
}

fn run(cases: Vec<Case>) {
    let compiled = schema();
    for case in cases {
        let obj = object(case.spec);
        let old = case.old_spec.map(object);
        let got = compiled.validate(&obj, old.as_ref());
        assert_eq!(got, case.want, "case: {}", case.desc);
    }
}

#[test]
fn structural_keywords() {
    run(vec![
        Case {
            desc: "a minimal valid policy has no causes",
            spec: json!({"nodeName": "gpu-1", "mode": "Enforce"}),
            old_spec: None,
            want: vec![],
        },
        Case {
            desc: "enum rejects an unknown mode",
            spec: json!({"nodeName": "gpu-1", "mode": "Foo"}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueNotSupported",
                    "spec.mode",
                    r#"Unsupported value: "Foo": supported values: "Enforce", "DryRun""#,
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "required names the missing field",
            spec: json!({"mode": "Enforce"}),
            old_spec: None,
            want: vec![
                cause("FieldValueRequired", "spec.nodeName", "Required value"),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "type mismatch prints the JSON type of the value",
            spec: json!({"nodeName": "gpu-1", "priority": "high"}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueTypeInvalid",
                    "spec.priority",
                    r#"Invalid value: "string": spec.priority in body must be of type integer: "string""#,
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "integer accepts JSON integers only",
            spec: json!({"nodeName": "gpu-1", "priority": 2.0}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueTypeInvalid",
                    "spec.priority",
                    r#"Invalid value: "number": spec.priority in body must be of type integer: "number""#,
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "number accepts integers",
            spec: json!({"nodeName": "gpu-1", "weight": 2}),
            old_spec: None,
            want: vec![],
        },
        Case {
            desc: "null is a type error unless nullable",
            spec: json!({"nodeName": "gpu-1", "contact": null, "priority": null}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueTypeInvalid",
                    "spec.priority",
                    r#"Invalid value: "null": spec.priority in body must be of type integer: "null""#,
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "minimum and maximum print the value and the bound",
            spec: json!({"nodeName": "gpu-1", "priority": 0, "weight": 0}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueInvalid",
                    "spec.priority",
                    "Invalid value: 0: spec.priority in body should be greater than or equal to 1",
                ),
                cause(
                    "FieldValueInvalid",
                    "spec.weight",
                    "Invalid value: 0: spec.weight in body should be greater than 0",
                ),
            ],
        },
        Case {
            desc: "maximum and multipleOf",
            spec: json!({"nodeName": "gpu-1", "priority": 101, "weight": 0.75}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueInvalid",
                    "spec.priority",
                    "Invalid value: 101: spec.priority in body should be less than or equal to 100",
                ),
                cause(
                    "FieldValueInvalid",
                    "spec.weight",
                    "Invalid value: 0.75: spec.weight in body should be a multiple of 0.5",
                ),
            ],
        },
        Case {
            desc: "exclusiveMaximum rejects the bound itself",
            spec: json!({"nodeName": "gpu-1", "weight": 10}),
            old_spec: None,
            want: vec![cause(
                "FieldValueInvalid",
                "spec.weight",
                "Invalid value: 10: spec.weight in body should be less than 10",
            )],
        },
        Case {
            desc: "boolean rejects a string",
            spec: json!({"nodeName": "gpu-1", "paused": "yes"}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueTypeInvalid",
                    "spec.paused",
                    r#"Invalid value: "string": spec.paused in body must be of type boolean: "string""#,
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "object rejects an array",
            spec: json!({"nodeName": "gpu-1", "requirements": []}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueTypeInvalid",
                    "spec.requirements",
                    r#"Invalid value: "array": spec.requirements in body must be of type object: "array""#,
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "date format checks the day exists; leap years count",
            spec: json!({"nodeName": "gpu-1", "since": "2023-02-29"}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueTypeInvalid",
                    "spec.since",
                    r#"Invalid value: "2023-02-29": spec.since in body must be of type date: "2023-02-29""#,
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "valid formats and bounds pass",
            spec: json!({"nodeName": "gpu-1", "since": "2024-02-29", "address": "010.0.0.1", "weight": 9.5, "paused": false}),
            old_spec: None,
            want: vec![],
        },
        Case {
            desc: "list-type set reports each repeated value once, at its second occurrence",
            spec: json!({"nodeName": "gpu-1", "onDrift": ["Alert", "Alert", "Alert"]}),
            old_spec: None,
            want: vec![cause(
                "FieldValueDuplicate",
                "spec.onDrift[1]",
                r#"Duplicate value: "Alert""#,
            )],
        },
        Case {
            desc: "list-type map items must be objects",
            spec: json!({"nodeName": "gpu-1", "requirements": {"kernelModules": ["nvidia"]}}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueTypeInvalid",
                    "spec.requirements.kernelModules[0]",
                    r#"Invalid value: "string": spec.requirements.kernelModules[0] in body must be of type object: "string""#,
                ),
                cause(
                    "FieldValueInvalid",
                    "spec.requirements.kernelModules[0]",
                    r#"Invalid value: "nvidia": must be an object for an array of list-type map"#,
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "pattern on list items names the index",
            spec: json!({"nodeName": "gpu-1", "requirements": {"driver": {"versions": ["550.54", "55x"]}}}),
            old_spec: None,
            want: vec![cause(
                "FieldValueInvalid",
                "spec.requirements.driver.versions[1]",
                r#"Invalid value: "55x": spec.requirements.driver.versions[1] in body should match '^[0-9]+(\.[0-9]+){1,2}$'"#,
            )],
        },
        Case {
            desc: "minItems and minLength",
            spec: json!({"nodeName": "gpu-1", "requirements": {"driver": {"versions": [], "branch": "x"}}}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueInvalid",
                    "spec.requirements.driver.branch",
                    r#"Invalid value: "x": spec.requirements.driver.branch in body should be at least 3 chars long"#,
                ),
                cause(
                    "FieldValueInvalid",
                    "spec.requirements.driver.versions",
                    "Invalid value: 0: spec.requirements.driver.versions in body should have at least 1 items",
                ),
            ],
        },
        Case {
            desc: "maxLength is too long and blocks rules",
            spec: json!({"nodeName": "a".repeat(64)}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueTooLong",
                    "spec.nodeName",
                    "Too long: may not be more than 63 bytes",
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "maxItems is too many",
            spec: json!({"nodeName": "gpu-1", "onDrift": ["Alert", "Taint", "Cordon", "Alert"], "maxUnavailable": 1}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueTooMany",
                    "spec.onDrift",
                    "Too many: 4: must have at most 3 items",
                ),
                cause(
                    "FieldValueDuplicate",
                    "spec.onDrift[3]",
                    r#"Duplicate value: "Alert""#,
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "map values are validated by additionalProperties, with dotted keys",
            spec: json!({"nodeName": "gpu-1", "labels": {"zone": "eu-west-1"}}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueTooLong",
                    "spec.labels.zone",
                    "Too long: may not be more than 5 bytes",
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "maxProperties stops the checks of the map's values",
            spec: json!({"nodeName": "gpu-1", "labels": {"a": "1", "b": "2", "c": "3", "d": "toolong"}}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueTooMany",
                    "spec.labels",
                    "Too many: 4: must have at most 3 items",
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "minProperties",
            spec: json!({"nodeName": "gpu-1", "tolerations": {}}),
            old_spec: None,
            want: vec![cause(
                "FieldValueInvalid",
                "spec.tolerations",
                "Invalid value: 0: spec.tolerations in body should have at least 1 properties",
            )],
        },
        Case {
            desc: "date-time format",
            spec: json!({"nodeName": "gpu-1", "window": {"start": "2025-02-30T10:00:00Z", "end": "2025-03-01t10:00:00.5+02:00"}}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueTypeInvalid",
                    "spec.window.start",
                    r#"Invalid value: "2025-02-30T10:00:00Z": spec.window.start in body must be of type date-time: "2025-02-30T10:00:00Z""#,
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "ipv4 format tolerates leading zeros but not five octets",
            spec: json!({"nodeName": "gpu-1", "address": "10.0.0.1.5"}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueTypeInvalid",
                    "spec.address",
                    r#"Invalid value: "10.0.0.1.5": spec.address in body must be of type ipv4: "10.0.0.1.5""#,
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "int-or-string accepts both and names both in type errors",
            spec: json!({"nodeName": "gpu-1", "onDrift": ["Cordon"], "maxUnavailable": true}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueTypeInvalid",
                    "spec.maxUnavailable",
                    r#"Invalid value: "boolean": spec.maxUnavailable in body must be of type integer,string: "boolean""#,
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "list-type map reports the second item with a duplicate key",
            spec: json!({"nodeName": "gpu-1", "requirements": {"kernelModules": [
                {"name": "nvidia"}, {"name": "nvidia_uvm"}, {"name": "nvidia", "params": "x=1"}
            ]}}),
            old_spec: None,
            want: vec![cause(
                "FieldValueDuplicate",
                "spec.requirements.kernelModules[2]",
                r#"Duplicate value: map[string]interface {}{"name":"nvidia"}"#,
            )],
        },
        Case {
            desc: "embedded resources need apiVersion and kind",
            spec: json!({"nodeName": "gpu-1", "template": {"kind": "", "spec": {}}}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueRequired",
                    "spec.template.apiVersion",
                    "Required value: must not be empty",
                ),
                cause(
                    "FieldValueInvalid",
                    "spec.template.kind",
                    r#"Invalid value: "": must not be empty"#,
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
        Case {
            desc: "preserve-unknown-fields still validates its declared properties",
            spec: json!({"nodeName": "gpu-1", "extra": {"anything": [1, 2], "known": 5}}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueTypeInvalid",
                    "spec.extra.known",
                    r#"Invalid value: "integer": spec.extra.known in body must be of type string: "integer""#,
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#),
                ),
            ],
        },
    ]);
}

#[test]
fn cel_rules() {
    run(vec![
        Case {
            desc: "has() and exists(): Cordon without maxUnavailable fails at spec",
            spec: json!({"nodeName": "gpu-1", "onDrift": ["Alert", "Cordon"]}),
            old_spec: None,
            want: vec![cause(
                "FieldValueInvalid",
                "spec",
                r#"Invalid value: "object": Cordon needs maxUnavailable"#,
            )],
        },
        Case {
            desc: "Cordon with maxUnavailable passes",
            spec: json!({"nodeName": "gpu-1", "onDrift": ["Cordon"], "maxUnavailable": "25%"}),
            old_spec: None,
            want: vec![],
        },
        Case {
            desc: "matches() on an int-or-string prints an empty type",
            spec: json!({"nodeName": "gpu-1", "maxUnavailable": "lots"}),
            old_spec: None,
            want: vec![cause(
                "FieldValueInvalid",
                "spec.maxUnavailable",
                r#"Invalid value: "": must be a count or a percentage"#,
            )],
        },
        Case {
            desc: "format.dns1123Label() from the Kubernetes library",
            spec: json!({"nodeName": "GPU_1"}),
            old_spec: None,
            want: vec![cause(
                "FieldValueInvalid",
                "spec.nodeName",
                r#"Invalid value: "string": must be a DNS-1123 label"#,
            )],
        },
        Case {
            desc: "quantity() from the Kubernetes library",
            spec: json!({"nodeName": "gpu-1", "requirements": {"memory": "512Mi"}}),
            old_spec: None,
            want: vec![cause(
                "FieldValueInvalid",
                "spec.requirements.memory",
                r#"Invalid value: "string": memory must exceed 1Gi"#,
            )],
        },
        Case {
            desc: "isURL() with messageExpression and a Forbidden reason",
            spec: json!({"nodeName": "gpu-1", "url": "not a url"}),
            old_spec: None,
            want: vec![cause(
                "FieldValueForbidden",
                "spec.url",
                "Forbidden: not a URL: not a url",
            )],
        },
        Case {
            desc: "all() on a list, and a rule without message on its items",
            spec: json!({"nodeName": "gpu-1", "targets": [{"name": "a", "count": 5000}, {"name": "b", "count": 0}]}),
            old_spec: None,
            want: vec![
                cause(
                    "FieldValueInvalid",
                    "spec.targets",
                    r#"Invalid value: "array": counts must stay below 1000"#,
                ),
                cause(
                    "FieldValueInvalid",
                    "spec.targets[1]",
                    r#"Invalid value: "object": failed rule: !has(self.count) || self.count > 0"#,
                ),
            ],
        },
        Case {
            desc: "fieldPath moves the cause to the named field; date-times compare as timestamps",
            spec: json!({"nodeName": "gpu-1", "window": {"start": "2025-03-02T00:00:00Z", "end": "2025-03-01T00:00:00Z"}}),
            old_spec: None,
            want: vec![cause(
                "FieldValueInvalid",
                "spec.window.end",
                r#"Invalid value: "object": start must precede end"#,
            )],
        },
        Case {
            desc: "transition rules do not run on create",
            spec: json!({"nodeName": "gpu-1", "selector": "gpu=a100"}),
            old_spec: None,
            want: vec![],
        },
        Case {
            desc: "transition rule with oldSelf fails on update",
            spec: json!({"nodeName": "gpu-1", "selector": "gpu=h100"}),
            old_spec: Some(json!({"nodeName": "gpu-1", "selector": "gpu=a100"})),
            want: vec![cause(
                "FieldValueInvalid",
                "spec.selector",
                r#"Invalid value: "string": selector is immutable"#,
            )],
        },
        Case {
            desc: "transition rule does not run when the field is new on update",
            spec: json!({"nodeName": "gpu-1", "selector": "gpu=h100"}),
            old_spec: Some(json!({"nodeName": "gpu-1"})),
            want: vec![],
        },
        Case {
            desc: "keyed list items pair with their old version by key, not by index",
            spec: json!({"nodeName": "gpu-1", "requirements": {"kernelModules": [
                {"name": "nvidia_uvm"}, {"name": "nvidia"}
            ]}}),
            old_spec: Some(
                json!({"nodeName": "gpu-1", "requirements": {"kernelModules": [
                    {"name": "nvidia", "params": "NVreg_EnableGpuFirmware=0"}, {"name": "nvidia_uvm"}
                ]}}),
            ),
            want: vec![cause(
                "FieldValueInvalid",
                "spec.requirements.kernelModules[1]",
                r#"Invalid value: "object": params cannot be removed"#,
            )],
        },
        Case {
            desc: "unchanged values are not re-judged on update (ratcheting)",
            spec: json!({"nodeName": "GPU_1", "priority": 0}),
            old_spec: Some(json!({"nodeName": "GPU_1", "priority": 0})),
            want: vec![],
        },
    ]);
}

#[test]
fn metadata_name_is_required() {
    let compiled = schema();
    let mut obj = object(json!({"nodeName": "gpu-1"}));
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("name");
    }
    assert_eq!(
        compiled.validate(&obj, None),
        vec![
            cause(
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required"
            ),
            cause(
                "FieldValueInvalid",
                "<nil>",
                &format!(r#"Invalid value: "null": {RULES_NOT_CHECKED}"#)
            ),
        ]
    );
}

#[test]
fn evaluation_errors_are_reported_as_the_server_words_them() {
    let compiled = CompiledSchema::compile(&json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "self.a == 'x'", "message": "a must be x"}]
        }}
    }))
    .expect("compiles");
    let causes = compiled.validate(&object(json!({})), None);
    assert_eq!(
        causes,
        vec![cause(
            "FieldValueInvalid",
            "spec",
            r#"Invalid value: "object": no such key: a evaluating rule: a must be x"#,
        )]
    );
}

#[test]
fn functions_the_cel_engine_lacks_fail_closed() {
    // `type()` is standard CEL that the cel crate does not provide; the rule
    // compiles (as on a real server) but every evaluation reports the gap
    // instead of passing silently.
    let compiled = CompiledSchema::compile(&json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": {"n": {
                "x-kubernetes-int-or-string": true,
                "x-kubernetes-validations": [{"rule": "type(self) == int ? self >= 0 : true"}]
            }}
        }}
    }))
    .expect("compiles");
    assert_eq!(
        compiled.validate(&object(json!({"n": 1})), None),
        vec![cause(
            "FieldValueInvalid",
            "spec.n",
            r#"Invalid value: "": undeclared reference to 'type' evaluating rule: type(self) == int ? self >= 0 : true"#,
        )]
    );
}

#[test]
fn schemas_without_rules_never_mention_rules() {
    let compiled = CompiledSchema::compile(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"n": {"type": "integer"}}}}
    }))
    .expect("compiles");
    assert!(!compiled.has_rules());
    let causes = compiled.validate(&object(json!({"n": "x"})), None);
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert_eq!(causes[0].reason, "FieldValueTypeInvalid");
}

#[test]
fn junctors() {
    let compiled = CompiledSchema::compile(&json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "oneOf": [{"required": ["a"]}, {"required": ["b"]}]
        }}
    }))
    .expect("compiles");
    let cases = [
        ("exactly one branch holds", json!({"a": "1"}), vec![]),
        (
            "no branch holds",
            json!({}),
            vec![
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    r#"Invalid value: "": "spec" must validate one and only one schema (oneOf). Found none valid"#,
                ),
                cause("FieldValueRequired", "spec.a", "Required value"),
            ],
        ),
        (
            "both branches hold",
            json!({"a": "1", "b": "2"}),
            vec![cause(
                "FieldValueInvalid",
                "<nil>",
                r#"Invalid value: "": "spec" must validate one and only one schema (oneOf). Found 2 valid alternatives"#,
            )],
        ),
    ];
    for (desc, spec, want) in cases {
        assert_eq!(compiled.validate(&object(spec), None), want, "case: {desc}");
    }
}

#[test]
fn compile_errors_name_the_path() {
    let cases = [
        (
            "a pattern the regex engine cannot run",
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "v": {"type": "string", "pattern": "^(?=1)[0-9]+$"}
            }}}}),
            "openAPIV3Schema.properties[spec].properties[v].pattern",
        ),
        (
            "a rule that does not parse",
            json!({"type": "object", "properties": {"spec": {"type": "object",
                "x-kubernetes-validations": [{"rule": "self.a >"}]
            }}}),
            "openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule",
        ),
        (
            "a messageExpression that does not parse",
            json!({"type": "object", "x-kubernetes-validations": [
                {"rule": "true"}, {"rule": "true", "messageExpression": "'a' +"}
            ]}),
            "openAPIV3Schema.x-kubernetes-validations[1].messageExpression",
        ),
        (
            "a reason the server does not allow",
            json!({"type": "object", "x-kubernetes-validations": [{"rule": "true", "reason": "Nope"}]}),
            "openAPIV3Schema.x-kubernetes-validations[0].reason",
        ),
        (
            "a fieldPath to a field the schema lacks",
            json!({"type": "object", "properties": {"a": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "true", "fieldPath": ".b"}]}),
            "openAPIV3Schema.x-kubernetes-validations[0].fieldPath",
        ),
        (
            "oldSelf below the items of an atomic list",
            json!({"type": "object", "properties": {"l": {"type": "array", "items": {
                "type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]
            }}}}),
            "openAPIV3Schema.properties[l].items.x-kubernetes-validations[0].rule",
        ),
        (
            "an unknown type",
            json!({"type": "object", "properties": {"a": {"type": "float"}}}),
            "openAPIV3Schema.properties[a].type",
        ),
        (
            "uniqueItems",
            json!({"type": "object", "properties": {"a": {"type": "array", "uniqueItems": true, "items": {"type": "string"}}}}),
            "openAPIV3Schema.properties[a].uniqueItems",
        ),
        (
            "a list-map key that is not an item property",
            json!({"type": "object", "properties": {"a": {"type": "array",
                "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}}}}}}),
            "openAPIV3Schema.properties[a].x-kubernetes-list-map-keys",
        ),
    ];
    for (desc, raw, want_path) in cases {
        match CompiledSchema::compile(&raw) {
            Ok(_) => panic!("case {desc:?}: compiled, want an error at {want_path}"),
            Err(err) => {
                assert_eq!(err.kind(), "invalid_schema", "case: {desc}");
                let super::SchemaError::Invalid { path, reason } = &err;
                assert_eq!(path, want_path, "case {desc:?}: {reason}");
                assert!(!reason.is_empty(), "case: {desc}");
            }
        }
    }
}

#[test]
fn rule_compile_error_carries_the_cel_error() {
    let err = CompiledSchema::compile(&json!({
        "type": "object",
        "x-kubernetes-validations": [{"rule": "self.a >"}]
    }))
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        err.starts_with("compiling schema at openAPIV3Schema.x-kubernetes-validations[0].rule: compilation failed: "),
        "{err}"
    );
}

#[test]
fn prune_removes_unknown_fields_and_reports_them() {
    let compiled = schema();
    let mut obj = json!({
        "apiVersion": "plumbline.dev/v1alpha1",
        "kind": "NodePolicy",
        "metadata": {"name": "p", "labels": {"a": "b"}},
        "spec": {
            "nodeName": "gpu-1",
            "bogus": 1,
            "targets": [{"name": "a", "extra": true}],
            "labels": {"zone": "a"},
            "extra": {"anything": {"deep": 1}, "known": "k"},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"kept": 1}},
            "contact": null,
            "priority": null
        },
        "unknownTop": {}
    });
    let pruned = compiled.prune(&mut obj);
    assert_eq!(
        pruned,
        vec!["spec.bogus", "spec.targets[0].extra", "unknownTop"]
    );
    assert_eq!(
        obj,
        json!({
            "apiVersion": "plumbline.dev/v1alpha1",
            "kind": "NodePolicy",
            "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {
                "nodeName": "gpu-1",
                "targets": [{"name": "a"}],
                "labels": {"zone": "a"},
                "extra": {"anything": {"deep": 1}, "known": "k"},
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"kept": 1}},
                "contact": null
            }
        }),
        "nulls of nullable fields stay, other nulls go silently"
    );
    assert!(compiled.prune(&mut obj).is_empty(), "pruning is idempotent");
}

#[test]
fn defaults_apply_where_the_parent_exists() {
    let compiled = schema();
    let cases = [
        (
            "defaults fill missing fields and nest into defaulted objects",
            json!({"nodeName": "gpu-1", "requirements": {}}),
            json!({"nodeName": "gpu-1", "mode": "DryRun", "requirements": {"driver": {"branch": "production"}}}),
        ),
        (
            "set values are kept; a null in a non-nullable field takes the default",
            json!({"nodeName": "gpu-1", "mode": null, "requirements": {"driver": {"branch": "beta"}}}),
            json!({"nodeName": "gpu-1", "mode": "DryRun", "requirements": {"driver": {"branch": "beta"}}}),
        ),
    ];
    for (desc, spec, want) in cases {
        let mut obj = object(spec);
        compiled.apply_defaults(&mut obj);
        assert_eq!(obj, object(want), "case: {desc}");
    }

    let mut no_spec = json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "n"}});
    let before = no_spec.clone();
    compiled.apply_defaults(&mut no_spec);
    assert_eq!(no_spec, before, "no spec, so no spec defaults");
}

#[test]
fn compiled_schema_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<CompiledSchema>();
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinities", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9%._ -]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("Cordon"),
            Just("Enforce"),
            Just("550.54"),
            Just("2Gi"),
            Just("2025-01-01T00:00:00Z")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    let keys = prop_oneof![
        Just("nodeName".to_owned()),
        Just("mode".to_owned()),
        Just("onDrift".to_owned()),
        Just("maxUnavailable".to_owned()),
        Just("requirements".to_owned()),
        Just("driver".to_owned()),
        Just("versions".to_owned()),
        Just("kernelModules".to_owned()),
        Just("name".to_owned()),
        Just("labels".to_owned()),
        Just("window".to_owned()),
        Just("template".to_owned()),
        Just("targets".to_owned()),
        Just("count".to_owned()),
        "[a-z]{1,6}",
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_input_makes_the_walks_panic(spec in arbitrary_json(), old_spec in arbitrary_json(), top in arbitrary_json()) {
        let compiled = schema();
        let old = object(old_spec);

        // A whole object of any shape, and a policy with any spec.
        let _ = compiled.validate(&top, None);
        let mut top = top;
        let _ = compiled.prune(&mut top);
        compiled.apply_defaults(&mut top);

        let mut obj = object(spec);
        let _ = compiled.validate(&obj, Some(&old));
        let pruned_once = compiled.prune(&mut obj);
        prop_assert!(compiled.prune(&mut obj).is_empty(), "second prune removed more after {:?}", pruned_once);
        compiled.apply_defaults(&mut obj);
        let first = compiled.validate(&obj, Some(&old));
        prop_assert_eq!(first, compiled.validate(&obj, Some(&old)));
    }
}
