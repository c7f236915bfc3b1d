//! The chart's ValidatingAdmissionPolicy binds each agent to its own node's
//! baseline. Its CEL is evaluated here, as rendered in `deploy/plumbline.yaml`,
//! against the requests a real API server would admit or refuse.

// Test helpers read fixed, committed manifests: a missing field is a test failure.
#![allow(clippy::unwrap_used)]

use kube_cel::cel;
use serde_json::{Value, json};

const AGENT: &str = "system:serviceaccount:plumbline-system:plumbline-agent";
const NODE_NAME_KEY: &str = "authentication.kubernetes.io/node-name";

fn admission_policy() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/plumbline.yaml");
    let text = std::fs::read_to_string(path).expect("deploy/plumbline.yaml is committed");
    text.split("\n---\n")
        .filter_map(|doc| serde_saphyr::from_str::<Value>(doc).ok())
        .find(|doc| doc["kind"] == "ValidatingAdmissionPolicy")
        .expect("the rendered manifests contain the node-bound ValidatingAdmissionPolicy")
}

fn eval(expression: &str, bindings: &[(&str, &Value)]) -> cel::Value {
    let program = cel::Program::compile(expression)
        .unwrap_or_else(|e| panic!("CEL does not compile: {expression}: {e:?}"));
    let mut context = cel::Context::default();
    for (name, value) in bindings {
        context.add_variable_from_value(*name, cel::to_value(value).expect("JSON converts to CEL"));
    }
    program
        .execute(&context)
        .unwrap_or_else(|e| panic!("CEL failed: {expression}: {e:?}"))
}

/// `Ok(())` when admitted, `Err(message)` when denied.
fn admit(policy: &Value, request: &Value, object: &Value) -> Result<(), String> {
    let spec = &policy["spec"];
    let base = [("request", request), ("object", object)];
    for condition in spec["matchConditions"].as_array().into_iter().flatten() {
        let expr = condition["expression"].as_str().unwrap();
        if eval(expr, &base) != cel::Value::Bool(true) {
            return Ok(());
        }
    }
    let mut variables = serde_json::Map::new();
    for variable in spec["variables"].as_array().into_iter().flatten() {
        let vars = Value::Object(variables.clone());
        let value = eval(
            variable["expression"].as_str().unwrap(),
            &[
                ("request", request),
                ("object", object),
                ("variables", &vars),
            ],
        );
        let json = match value {
            cel::Value::String(s) => Value::String(s.to_string()),
            other => panic!("variable {} is not a string: {other:?}", variable["name"]),
        };
        variables.insert(variable["name"].as_str().unwrap().to_string(), json);
    }
    let vars = Value::Object(variables);
    let bindings = [
        ("request", request),
        ("object", object),
        ("variables", &vars),
    ];
    for validation in spec["validations"].as_array().unwrap() {
        let passed = eval(validation["expression"].as_str().unwrap(), &bindings);
        if passed != cel::Value::Bool(true) {
            let message = match validation["messageExpression"].as_str() {
                Some(expr) => match eval(expr, &bindings) {
                    cel::Value::String(s) => s.to_string(),
                    other => panic!("messageExpression gave {other:?}"),
                },
                None => validation["message"].as_str().unwrap().to_string(),
            };
            return Err(message);
        }
    }
    Ok(())
}

fn request(user: &str, bound_node: Option<&str>, operation: &str, name: &str) -> Value {
    let mut user_info = json!({"username": user});
    if let Some(node) = bound_node {
        user_info["extra"] = json!({ NODE_NAME_KEY: [node] });
    }
    json!({"userInfo": user_info, "operation": operation, "name": name})
}

fn baseline(node: &str) -> Value {
    json!({"metadata": {"name": node}, "spec": {"nodeName": node}})
}

#[test]
fn agent_is_bound_to_its_own_node() {
    let policy = admission_policy();
    struct Case {
        description: &'static str,
        request: Value,
        object: Value,
        denied_with: Option<&'static str>,
    }
    let cases = [
        Case {
            description: "agent creates its own node's baseline",
            request: request(AGENT, Some("gpu-1"), "CREATE", "gpu-1"),
            object: baseline("gpu-1"),
            denied_with: None,
        },
        Case {
            description: "agent updates its own node's status",
            request: request(AGENT, Some("gpu-1"), "UPDATE", "gpu-1"),
            object: baseline("gpu-1"),
            denied_with: None,
        },
        Case {
            description: "agent forges another node's baseline",
            request: request(AGENT, Some("gpu-1"), "UPDATE", "gpu-2"),
            object: baseline("gpu-2"),
            denied_with: Some("agent on node gpu-1 may not write the baseline of node gpu-2"),
        },
        Case {
            description: "agent names another node in spec.nodeName",
            request: request(AGENT, Some("gpu-1"), "CREATE", "gpu-1"),
            object: json!({"metadata": {"name": "gpu-1"}, "spec": {"nodeName": "gpu-2"}}),
            denied_with: Some("spec.nodeName must be gpu-1"),
        },
        Case {
            description: "agent token without a bound node (pre-1.30 or a stolen non-pod token)",
            request: request(AGENT, None, "CREATE", "gpu-1"),
            object: baseline("gpu-1"),
            denied_with: Some("carries no node name"),
        },
        Case {
            description: "agent deletes a baseline",
            request: request(AGENT, Some("gpu-1"), "DELETE", "gpu-1"),
            object: Value::Null,
            denied_with: Some("agents never delete baselines"),
        },
        Case {
            description: "the controller writes any verdict: the policy does not apply to it",
            request: request(
                "system:serviceaccount:plumbline-system:plumbline-controller",
                None,
                "UPDATE",
                "gpu-2",
            ),
            object: baseline("gpu-2"),
            denied_with: None,
        },
        Case {
            description: "an admin deletes a baseline: not matched",
            request: request("kubernetes-admin", None, "DELETE", "gpu-2"),
            object: Value::Null,
            denied_with: None,
        },
    ];
    for case in cases {
        let outcome = admit(&policy, &case.request, &case.object);
        match (case.denied_with, outcome) {
            (None, Ok(())) => {}
            (None, Err(message)) => panic!("{}: denied unexpectedly: {message}", case.description),
            (Some(expected), Ok(())) => panic!(
                "{}: admitted, expected denial '{expected}'",
                case.description
            ),
            (Some(expected), Err(message)) => assert!(
                message.contains(expected),
                "{}: message '{message}' does not contain '{expected}'",
                case.description
            ),
        }
    }
}

#[test]
fn policy_covers_baselines_and_their_status() {
    let policy = admission_policy();
    let rules = &policy["spec"]["matchConstraints"]["resourceRules"][0];
    assert_eq!(rules["apiGroups"], json!(["plumbline.dev"]));
    assert_eq!(
        rules["resources"],
        json!(["nodegpubaselines", "nodegpubaselines/status"])
    );
    assert_eq!(policy["spec"]["failurePolicy"], "Fail");
}
