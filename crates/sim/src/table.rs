//! Server-side printing: `meta.k8s.io/v1` `Table` responses, as `kubectl get`
//! asks for them. Custom resources use their `additionalPrinterColumns`;
//! a few built-ins have their familiar columns; everything else shows
//! NAME and AGE.

use serde_json::{Value, json};

use crate::resources::ResourceDef;
use crate::util::{age_of, human_duration, seconds_since};

fn col(name: &str, ty: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

fn name_col() -> Value {
    col(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace.",
        0,
    )
}

fn age_col() -> Value {
    col(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        0,
    )
}

pub(crate) fn column_definitions(def: &ResourceDef) -> Vec<Value> {
    if let Some(crd) = &def.crd {
        let mut cols = vec![name_col()];
        if crd.printer_columns.is_empty() {
            cols.push(age_col());
        }
        for c in &crd.printer_columns {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            cols.push(col(
                &s("name"),
                &s("type"),
                &s("format"),
                &s("description"),
                c.get("priority").and_then(Value::as_i64).unwrap_or(0),
            ));
        }
        return cols;
    }
    match (def.group.as_str(), def.kind.as_str()) {
        ("", "Node") => vec![
            name_col(),
            col("Status", "string", "", "The status of the node", 0),
            col("Roles", "string", "", "The roles of the node", 0),
            age_col(),
            col(
                "Version",
                "string",
                "",
                "Kubelet Version reported by the node.",
                0,
            ),
            col(
                "Internal-IP",
                "string",
                "",
                "List of addresses reachable to the node.",
                1,
            ),
            col(
                "External-IP",
                "string",
                "",
                "List of addresses reachable to the node.",
                1,
            ),
            col(
                "OS-Image",
                "string",
                "",
                "OS Image reported by the node.",
                1,
            ),
            col(
                "Kernel-Version",
                "string",
                "",
                "Kernel Version reported by the node.",
                1,
            ),
            col(
                "Container-Runtime",
                "string",
                "",
                "Container Runtime Version reported by the node.",
                1,
            ),
        ],
        ("", "Pod") => vec![
            name_col(),
            col(
                "Ready",
                "string",
                "",
                "The aggregate readiness state of this pod for accepting traffic.",
                0,
            ),
            col(
                "Status",
                "string",
                "",
                "The aggregate status of the containers in this pod.",
                0,
            ),
            col(
                "Restarts",
                "string",
                "",
                "The number of times the containers in this pod have been restarted.",
                0,
            ),
            age_col(),
            col(
                "Node",
                "string",
                "",
                "Name of the node the pod is scheduled on.",
                1,
            ),
        ],
        ("", "Namespace") => vec![
            name_col(),
            col("Status", "string", "", "The status of the namespace", 0),
            age_col(),
        ],
        ("", "Event") | ("events.k8s.io", "Event") => vec![
            col(
                "Last Seen",
                "string",
                "",
                "Time when last this event was observed",
                0,
            ),
            col("Type", "string", "", "Type of this event", 0),
            col(
                "Reason",
                "string",
                "",
                "Reason why this event was generated",
                0,
            ),
            col("Object", "string", "", "Object this event is about", 0),
            col("Message", "string", "", "Message describing this event", 0),
        ],
        ("apps", "Deployment") => vec![
            name_col(),
            col(
                "Ready",
                "string",
                "",
                "Number of the pod with ready state",
                0,
            ),
            col(
                "Up-to-date",
                "string",
                "",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                0,
            ),
            col(
                "Available",
                "string",
                "",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                0,
            ),
            age_col(),
        ],
        ("apps", "DaemonSet") => vec![
            name_col(),
            col(
                "Desired",
                "integer",
                "",
                "The total number of nodes that should be running the daemon pod.",
                0,
            ),
            col(
                "Current",
                "integer",
                "",
                "The number of nodes that are running at least 1 daemon pod.",
                0,
            ),
            col(
                "Ready",
                "integer",
                "",
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
                0,
            ),
            col(
                "Up-to-date",
                "integer",
                "",
                "The total number of nodes that are running updated daemon pod",
                0,
            ),
            col(
                "Available",
                "integer",
                "",
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
                0,
            ),
            col(
                "Node Selector",
                "string",
                "",
                "NodeSelector is a selector which must be true for the pod to fit on a node.",
                0,
            ),
            age_col(),
        ],
        ("coordination.k8s.io", "Lease") => vec![
            name_col(),
            col("Holder", "string", "", "The holder of the lease", 0),
            age_col(),
        ],
        _ => vec![name_col(), age_col()],
    }
}

fn s<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn i(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn node_cells(obj: &Value) -> Vec<Value> {
    let conds = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ready = conds
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"));
    let mut status = match ready.and_then(|c| c.get("status")).and_then(Value::as_str) {
        Some("True") => "Ready".to_string(),
        Some("False") => "NotReady".to_string(),
        _ => "Unknown".to_string(),
    };
    if obj.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .filter(|r| !r.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };
    let addr = |t: &str| {
        obj.pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|x| x.get("type").and_then(Value::as_str) == Some(t))
            })
            .and_then(|x| x.get("address").and_then(Value::as_str))
            .unwrap_or("<none>")
            .to_string()
    };
    let or_unknown = |v: &str| {
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        json!(s(obj, "/metadata/name")),
        json!(status),
        json!(roles),
        json!(age_of(obj)),
        json!(s(obj, "/status/nodeInfo/kubeletVersion")),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(or_unknown(s(obj, "/status/nodeInfo/osImage"))),
        json!(or_unknown(s(obj, "/status/nodeInfo/kernelVersion"))),
        json!(or_unknown(s(
            obj,
            "/status/nodeInfo/containerRuntimeVersion"
        ))),
    ]
}

fn pod_cells(obj: &Value) -> Vec<Value> {
    let statuses = obj
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = obj
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or(0);
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let restarts: i64 = statuses.iter().map(|c| i(c, "/restartCount")).sum();
    let node = s(obj, "/spec/nodeName");
    vec![
        json!(s(obj, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(if s(obj, "/status/phase").is_empty() {
            "Pending"
        } else {
            s(obj, "/status/phase")
        }),
        json!(restarts.to_string()),
        json!(age_of(obj)),
        json!(if node.is_empty() { "<none>" } else { node }),
    ]
}

fn event_cells(obj: &Value) -> Vec<Value> {
    let last = [
        "/lastTimestamp",
        "/deprecatedLastTimestamp",
        "/series/lastObservedTime",
        "/eventTime",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .map(|p| s(obj, p))
    .find(|v| !v.is_empty())
    .and_then(seconds_since)
    .map(human_duration)
    .unwrap_or_else(|| "<unknown>".into());
    let regarding = obj
        .get("involvedObject")
        .or_else(|| obj.get("regarding"))
        .cloned()
        .unwrap_or(Value::Null);
    let object = format!(
        "{}/{}",
        s(&regarding, "/kind").to_lowercase(),
        s(&regarding, "/name")
    );
    let message = if obj.get("message").is_some() {
        s(obj, "/message")
    } else {
        s(obj, "/note")
    };
    vec![
        json!(last),
        json!(s(obj, "/type")),
        json!(s(obj, "/reason")),
        json!(object),
        json!(message),
    ]
}

/// Evaluates the simple JSONPath forms printer columns use:
/// `.a.b`, `.a[0].b`, `.a[*].b`, `.metadata.labels.x\.y`.
pub(crate) fn json_path<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut tokens: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '.' => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
            }
            '[' => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
                let mut idx = String::from("[");
                for n in chars.by_ref() {
                    idx.push(n);
                    if n == ']' {
                        break;
                    }
                }
                tokens.push(idx);
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    let mut current = vec![obj];
    for t in tokens {
        let mut next = Vec::new();
        for v in current {
            if let Some(inner) = t.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
                let inner = inner.trim_matches(|c| c == '\'' || c == '"');
                match v {
                    Value::Array(a) if inner == "*" => next.extend(a.iter()),
                    Value::Array(a) => {
                        if let Ok(i) = inner.parse::<usize>() {
                            next.extend(a.get(i));
                        }
                    }
                    Value::Object(m) if inner == "*" => next.extend(m.values()),
                    Value::Object(m) => next.extend(m.get(inner)),
                    _ => {}
                }
            } else if let Some(x) = v.get(&t) {
                next.push(x);
            }
        }
        current = next;
    }
    current
}

fn custom_cell(obj: &Value, column: &Value) -> Value {
    let path = column.get("jsonPath").and_then(Value::as_str).unwrap_or("");
    let ty = column
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    let found = json_path(obj, path);
    match found.as_slice() {
        [] => Value::Null,
        [one] => match (ty, one) {
            ("date", Value::String(t)) => seconds_since(t)
                .map(|d| json!(human_duration(d)))
                .unwrap_or_else(|| json!(t)),
            (_, Value::String(_) | Value::Number(_) | Value::Bool(_)) => (*one).clone(),
            (_, other) => json!(other.to_string()),
        },
        many => json!(
            many.iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn cells(def: &ResourceDef, obj: &Value) -> Vec<Value> {
    if let Some(crd) = &def.crd {
        let mut out = vec![json!(s(obj, "/metadata/name"))];
        if crd.printer_columns.is_empty() {
            out.push(json!(age_of(obj)));
        }
        out.extend(crd.printer_columns.iter().map(|c| custom_cell(obj, c)));
        return out;
    }
    let name = json!(s(obj, "/metadata/name"));
    match (def.group.as_str(), def.kind.as_str()) {
        ("", "Node") => node_cells(obj),
        ("", "Pod") => pod_cells(obj),
        ("", "Namespace") => vec![name, json!(s(obj, "/status/phase")), json!(age_of(obj))],
        ("", "Event") | ("events.k8s.io", "Event") => event_cells(obj),
        ("apps", "Deployment") => vec![
            name,
            json!(format!(
                "{}/{}",
                i(obj, "/status/readyReplicas"),
                i(obj, "/spec/replicas")
            )),
            json!(i(obj, "/status/updatedReplicas")),
            json!(i(obj, "/status/availableReplicas")),
            json!(age_of(obj)),
        ],
        ("apps", "DaemonSet") => {
            let sel = obj
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|x| !x.is_empty())
                .unwrap_or_else(|| "<none>".into());
            vec![
                name,
                json!(i(obj, "/status/desiredNumberScheduled")),
                json!(i(obj, "/status/currentNumberScheduled")),
                json!(i(obj, "/status/numberReady")),
                json!(i(obj, "/status/updatedNumberScheduled")),
                json!(i(obj, "/status/numberAvailable")),
                json!(sel),
                json!(age_of(obj)),
            ]
        }
        ("coordination.k8s.io", "Lease") => vec![
            name,
            json!(s(obj, "/spec/holderIdentity")),
            json!(age_of(obj)),
        ],
        _ => vec![name, json!(age_of(obj))],
    }
}

/// One row; `include` is `includeObject`: `None`, `Metadata` (default) or `Object`.
pub(crate) fn row(def: &ResourceDef, obj: &Value, include: &str) -> Value {
    let mut r = json!({"cells": cells(def, obj)});
    match include {
        "None" => {}
        "Object" => r["object"] = obj.clone(),
        _ => {
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
            })
        }
    }
    r
}

pub(crate) fn table(def: &ResourceDef, rows: Vec<Value>, rv: &str, cont: Option<&str>) -> Value {
    let mut meta = json!({"resourceVersion": rv});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": column_definitions(def),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_simple_forms() {
        let o = json!({"status": {"observed": {"driver": {"version": "580.1"}},
            "gpus": [{"product": "H100"}, {"product": "A100"}]},
            "metadata": {"labels": {"a.b/c": "x"}}});
        assert_eq!(
            json_path(&o, ".status.observed.driver.version"),
            vec![&json!("580.1")]
        );
        assert_eq!(json_path(&o, ".status.gpus[*].product").len(), 2);
        assert_eq!(
            json_path(&o, ".status.gpus[1].product"),
            vec![&json!("A100")]
        );
        assert_eq!(json_path(&o, ".metadata.labels.a\\.b/c"), vec![&json!("x")]);
        assert!(json_path(&o, ".status.missing").is_empty());
    }
}
