//! Views of stored objects as a given served version sees them: custom
//! resources get the requested `apiVersion`; events convert between
//! `v1` and `events.k8s.io/v1` field names, so one store serves both.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::resources::ResourceDef;

/// Core `v1` Event field <-> `events.k8s.io/v1` Event field.
const EVENT_RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

pub(crate) fn view<'a>(def: &ResourceDef, obj: &'a Value) -> Cow<'a, Value> {
    let want = def.api_version();
    let have = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if have == want {
        return Cow::Borrowed(obj);
    }
    if def.store_key == "events" {
        return Cow::Owned(convert_event(obj, &want));
    }
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(want));
    }
    Cow::Owned(o)
}

fn convert_event(obj: &Value, to: &str) -> Value {
    let Some(src) = obj.as_object() else {
        return obj.clone();
    };
    let to_core = to == "v1";
    let mut out = Map::new();
    for (k, v) in src {
        let renamed = EVENT_RENAMES.iter().find_map(|(core, new)| {
            if to_core && k == new {
                Some(*core)
            } else if !to_core && k == core {
                Some(*new)
            } else {
                None
            }
        });
        out.insert(renamed.unwrap_or(k).to_string(), v.clone());
    }
    out.insert("apiVersion".into(), Value::String(to.to_string()));
    if to_core {
        // `kubectl describe` reads `source.component`, `count` and timestamps.
        if !out.contains_key("source")
            && let Some(c) = out.get("reportingComponent").cloned()
        {
            out.insert("source".into(), serde_json::json!({"component": c}));
        }
        if let Some(n) = obj.pointer("/series/count").cloned() {
            out.entry("count").or_insert(n);
        }
        let first = out.get("eventTime").cloned();
        if let Some(t) = first
            && !t.is_null()
            && !out.contains_key("firstTimestamp")
        {
            let secs = t.as_str().map(|s| format!("{}Z", &s[..s.len().min(19)]));
            if let Some(s) = secs {
                out.insert("firstTimestamp".into(), Value::String(s.clone()));
                let last = obj
                    .pointer("/series/lastObservedTime")
                    .and_then(Value::as_str)
                    .map(|l| format!("{}Z", &l[..l.len().min(19)]))
                    .unwrap_or(s);
                out.entry("lastTimestamp").or_insert(Value::String(last));
            }
        }
        out.entry("involvedObject")
            .or_insert_with(|| Value::Object(Map::new()));
    } else {
        out.remove("involvedObject");
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_v1_read_as_core_events() {
        let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "n1.1", "namespace": "default"},
            "regarding": {"kind": "Node", "name": "n1"}, "note": "drifted", "reason": "Drift",
            "reportingController": "plumbline", "eventTime": "2026-01-01T00:00:00.123456Z", "type": "Warning"});
        let core = convert_event(&ev, "v1");
        assert_eq!(core["involvedObject"]["name"], "n1");
        assert_eq!(core["message"], "drifted");
        assert_eq!(core["source"]["component"], "plumbline");
        assert_eq!(core["firstTimestamp"], "2026-01-01T00:00:00Z");
        let back = convert_event(&core, "events.k8s.io/v1");
        assert_eq!(back["regarding"]["kind"], "Node");
        assert_eq!(back["note"], "drifted");
    }
}
