//! What the agent writes into `status`, and how a write is kept to the
//! agent's own fields.
//!
//! The agent builds the part of `status` it owns as JSON and sends the
//! difference from what the server holds as an RFC 7386 merge patch on the
//! `/status` subresource. A merge patch changes only the keys it names, and
//! this one can only name keys in [`AGENT_FIELDS`], so `status.verdict` (the
//! controller's) cannot be overwritten whatever the agent observed. Keys
//! that disappeared from the observation are sent as `null`, which a merge
//! patch reads as "remove", so a field the host lost does not linger.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use plumbline_api::keys;
use plumbline_api::{Observed, ProbeResult, ProbeStatus, Summary};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The `status` keys the agent owns. Everything else (`verdict`) belongs to
/// the controller and never appears in an agent write.
pub const AGENT_FIELDS: &[&str] = &[
    "observed",
    "probes",
    "summary",
    "lastHeartbeatTime",
    "agentVersion",
    "observedHash",
    "conditions",
];

/// Longest `Probed` condition message written; the API allows 32 KiB.
const MAX_CONDITION_MESSAGE: usize = 4096;

/// One probe pass and its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub observed: Observed,
    pub probes: Vec<ProbeResult>,
    /// [`observed_hash`] of the two.
    pub hash: String,
}

impl Snapshot {
    pub fn new(observed: Observed, probes: Vec<ProbeResult>) -> Snapshot {
        let hash = observed_hash(&observed, &probes);
        Snapshot {
            observed,
            probes,
            hash,
        }
    }
}

/// Hash of what was observed and how each probe went, without durations
/// (which differ on every pass), so an unchanged host hashes the same.
pub fn observed_hash(observed: &Observed, probes: &[ProbeResult]) -> String {
    #[derive(Serialize)]
    struct ProbeKey<'a> {
        name: &'a str,
        status: ProbeStatus,
        message: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct HashInput<'a> {
        observed: &'a Observed,
        probes: Vec<ProbeKey<'a>>,
    }
    let input = HashInput {
        observed,
        probes: probes
            .iter()
            .map(|p| ProbeKey {
                name: &p.name,
                status: p.status,
                message: p.message.as_deref(),
            })
            .collect(),
    };
    let mut hasher = Sha256::new();
    // Serializing plain structs and vectors cannot fail; if it ever did, an
    // empty input still yields a stable hash rather than a crash.
    hasher.update(serde_json::to_vec(&input).unwrap_or_default());
    let digest = hasher.finalize();
    let mut out = String::with_capacity(32);
    for byte in digest.iter().take(16) {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// The agent-owned keys of a `status` object, as the server holds them.
pub fn agent_part(status: Option<&Value>) -> Value {
    let mut out = Map::new();
    if let Some(Value::Object(status)) = status {
        for key in AGENT_FIELDS {
            if let Some(v) = status.get(*key) {
                out.insert((*key).to_string(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// The agent-owned part of `status` for `snapshot`, heartbeat at `now`.
/// `current` is the server's agent part: the `Probed` condition keeps its
/// transition time while its status holds, and conditions of other types
/// are kept as they are.
pub fn desired(snapshot: &Snapshot, agent_version: &str, now: Timestamp, current: &Value) -> Value {
    let errors: Vec<String> = snapshot
        .probes
        .iter()
        .filter(|p| p.status == ProbeStatus::Error)
        .map(|p| format!("{}: {}", p.name, p.message.as_deref().unwrap_or("error")))
        .collect();
    let (cond_status, reason, mut message) = if errors.is_empty() {
        (
            "True",
            keys::reasons::ALL_PROBES_OK,
            "every probe ran".to_string(),
        )
    } else {
        ("False", keys::reasons::PROBE_ERRORS, errors.join("; "))
    };
    truncate(&mut message, MAX_CONDITION_MESSAGE);

    let existing: Vec<Condition> = current
        .get("conditions")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let since = existing
        .iter()
        .find(|c| c.type_ == keys::conditions::PROBED && c.status == cond_status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let mut conditions: Vec<Condition> = existing
        .into_iter()
        .filter(|c| c.type_ != keys::conditions::PROBED)
        .collect();
    conditions.push(Condition {
        type_: keys::conditions::PROBED.to_string(),
        status: cond_status.to_string(),
        reason: reason.to_string(),
        message,
        last_transition_time: since,
        observed_generation: None,
    });

    let status = serde_json::json!({
        "observed": snapshot.observed,
        "probes": snapshot.probes,
        "summary": Summary::from_observed(&snapshot.observed),
        "lastHeartbeatTime": Time(now),
        "agentVersion": agent_version,
        "observedHash": snapshot.hash,
        "conditions": conditions,
    });
    strip_nulls(status)
}

/// `current` with only the heartbeat moved to `now`.
pub fn heartbeat(current: &Value, now: Timestamp) -> Value {
    let mut next = current.clone();
    if let Value::Object(map) = &mut next {
        map.insert(
            "lastHeartbeatTime".to_string(),
            serde_json::to_value(Time(now)).unwrap_or(Value::Null),
        );
    }
    next
}

/// The merge patch that turns `old` into `new` (both without nulls):
/// changed keys with their new value, removed keys as `null`, unchanged
/// keys left out. `None` when they are equal.
pub fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for (key, nv) in n {
                match o.get(key) {
                    Some(ov) => {
                        if let Some(d) = merge_diff(ov, nv) {
                            out.insert(key.clone(), d);
                        }
                    }
                    None => {
                        out.insert(key.clone(), nv.clone());
                    }
                }
            }
            for key in o.keys() {
                if !n.contains_key(key) {
                    out.insert(key.clone(), Value::Null);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        _ if old == new => None,
        _ => Some(new.clone()),
    }
}

/// Removes `null` members, as a merge patch would, so that what is sent
/// equals what the server stores and compares equal next time.
pub fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// The server's `observedHash`, if any.
pub fn hash_of(agent_part: &Value) -> Option<&str> {
    agent_part.get("observedHash").and_then(Value::as_str)
}

/// The server's `lastHeartbeatTime`, if any and parseable.
pub fn heartbeat_of(agent_part: &Value) -> Option<Timestamp> {
    agent_part
        .get("lastHeartbeatTime")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

fn truncate(message: &mut String, max: usize) {
    if message.len() > max {
        let mut cut = max;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plumbline_api::{CdiSpecObserved, DriverObserved, KernelModule};
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn probe(name: &str, status: ProbeStatus, message: Option<&str>, micros: u64) -> ProbeResult {
        ProbeResult {
            name: name.to_string(),
            status,
            message: message.map(str::to_string),
            duration_micros: micros,
        }
    }

    fn observed(version: &str) -> Observed {
        Observed {
            driver: DriverObserved {
                loaded: true,
                version: Some(version.to_string()),
                branch: version.split('.').next().and_then(|b| b.parse().ok()),
                kernel_module: KernelModule::Open,
                ..DriverObserved::default()
            },
            ..Observed::default()
        }
    }

    fn now() -> Timestamp {
        "2025-06-01T12:00:00Z"
            .parse()
            .expect("literal timestamp parses")
    }

    #[test]
    fn hash_ignores_durations_but_not_status_or_message() {
        let o = observed("580.95.05");
        let a = observed_hash(&o, &[probe("cdi", ProbeStatus::Ok, None, 10)]);
        let b = observed_hash(&o, &[probe("cdi", ProbeStatus::Ok, None, 99_999)]);
        let c = observed_hash(&o, &[probe("cdi", ProbeStatus::Error, None, 10)]);
        let d = observed_hash(&o, &[probe("cdi", ProbeStatus::Ok, Some("note"), 10)]);
        let e = observed_hash(
            &observed("580.95.06"),
            &[probe("cdi", ProbeStatus::Ok, None, 10)],
        );
        assert_eq!(a, b, "durations must not change the hash");
        assert_ne!(a, c, "a probe's status is part of the hash");
        assert_ne!(a, d, "a probe's message is part of the hash");
        assert_ne!(a, e, "the observation is part of the hash");
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn merge_diff_table() {
        struct Case {
            what: &'static str,
            old: Value,
            new: Value,
            want: Option<Value>,
        }
        let cases = [
            Case {
                what: "equal values need no patch",
                old: json!({"a": 1, "b": {"c": [1, 2]}}),
                new: json!({"a": 1, "b": {"c": [1, 2]}}),
                want: None,
            },
            Case {
                what: "a changed leaf is sent alone",
                old: json!({"a": 1, "b": {"c": 1, "d": 2}}),
                new: json!({"a": 1, "b": {"c": 1, "d": 3}}),
                want: Some(json!({"b": {"d": 3}})),
            },
            Case {
                what: "a removed key is sent as null",
                old: json!({"driver": {"version": "550.1", "loaded": true}}),
                new: json!({"driver": {"loaded": false}}),
                want: Some(json!({"driver": {"version": null, "loaded": false}})),
            },
            Case {
                what: "arrays are replaced whole",
                old: json!({"l": [1, 2, 3]}),
                new: json!({"l": [1, 3]}),
                want: Some(json!({"l": [1, 3]})),
            },
            Case {
                what: "a new key is sent whole",
                old: json!({}),
                new: json!({"x": {"y": 1}}),
                want: Some(json!({"x": {"y": 1}})),
            },
            Case {
                what: "a type change replaces the value",
                old: json!({"x": 1}),
                new: json!({"x": {"y": 1}}),
                want: Some(json!({"x": {"y": 1}})),
            },
        ];
        for case in cases {
            assert_eq!(merge_diff(&case.old, &case.new), case.want, "{}", case.what);
        }
    }

    /// Applies a merge patch (RFC 7386) to check that a diff round-trips.
    fn apply(target: &mut Value, patch: &Value) {
        match (target.as_object_mut(), patch) {
            (Some(t), Value::Object(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        let slot = t.entry(k.clone()).or_insert(Value::Null);
                        if v.is_object() && slot.is_object() {
                            apply(slot, v);
                        } else {
                            *slot = strip_nulls(v.clone());
                        }
                    }
                }
            }
            _ => *target = strip_nulls(patch.clone()),
        }
    }

    #[test]
    fn diff_applied_to_the_server_state_yields_the_desired_state_and_keeps_verdict() {
        let verdict = json!({"state": "Drifting", "policy": "prod", "findings": [{"rule": "driver.version", "message": "old"}]});
        let old_snapshot = Snapshot::new(
            Observed {
                cdi: plumbline_api::CdiObserved {
                    specs: vec![CdiSpecObserved {
                        path: "/etc/cdi/nvidia.yaml".into(),
                        kind: Some("nvidia.com/gpu".into()),
                        ..CdiSpecObserved::default()
                    }],
                },
                ..observed("550.54.15")
            },
            vec![probe("cdi", ProbeStatus::Ok, None, 5)],
        );
        let mut server = json!({"verdict": verdict});
        let first = desired(&old_snapshot, "0.1.0", now(), &agent_part(Some(&server)));
        let first_patch =
            merge_diff(&agent_part(Some(&server)), &first).expect("a first write differs");
        apply(&mut server, &first_patch);

        // The host lost its CDI spec and the driver changed.
        let new_snapshot = Snapshot::new(
            observed("580.95.05"),
            vec![probe("cdi", ProbeStatus::Absent, Some("no specs"), 7)],
        );
        let later = now()
            .checked_add(jiff::SignedDuration::from_secs(60))
            .expect("in range");
        let second = desired(&new_snapshot, "0.1.0", later, &agent_part(Some(&server)));
        let patch =
            merge_diff(&agent_part(Some(&server)), &second).expect("a changed host differs");
        assert!(patch.get("verdict").is_none(), "patch never names verdict");
        apply(&mut server, &patch);

        assert_eq!(agent_part(Some(&server)), second);
        assert_eq!(server["verdict"], verdict);
        assert!(
            server["observed"]
                .get("cdi")
                .is_some_and(|c| c["specs"] == json!([])),
            "the lost spec is gone: {}",
            server["observed"]
        );
        assert_eq!(
            hash_of(&agent_part(Some(&server))),
            Some(&*new_snapshot.hash)
        );
    }

    #[test]
    fn desired_never_contains_verdict_even_if_the_server_part_did() {
        let snapshot = Snapshot::new(observed("580.95.05"), vec![]);
        let current = json!({"verdict": {"state": "Compliant"}, "observedHash": "x"});
        let d = desired(&snapshot, "0.1.0", now(), &current);
        let keys: Vec<&String> = d.as_object().expect("an object").keys().collect();
        assert!(keys.iter().all(|k| AGENT_FIELDS.contains(&k.as_str())));
    }

    #[test]
    fn probed_condition_keeps_transition_time_while_status_holds() {
        let ok = Snapshot::new(
            observed("580.95.05"),
            vec![probe("cdi", ProbeStatus::Ok, None, 1)],
        );
        let bad = Snapshot::new(
            observed("580.95.05"),
            vec![probe(
                "cdi",
                ProbeStatus::Error,
                Some("reading /etc/cdi/x.yaml: bad"),
                1,
            )],
        );
        let t0 = now();
        let t1 = t0
            .checked_add(jiff::SignedDuration::from_secs(120))
            .expect("in range");
        let first = desired(&ok, "v", t0, &json!({}));
        let same = desired(&ok, "v", t1, &first);
        assert_eq!(
            first["conditions"][0]["lastTransitionTime"],
            same["conditions"][0]["lastTransitionTime"]
        );
        let flipped = desired(&bad, "v", t1, &same);
        assert_eq!(flipped["conditions"][0]["status"], "False");
        assert_eq!(
            flipped["conditions"][0]["reason"],
            keys::reasons::PROBE_ERRORS
        );
        assert_eq!(
            flipped["conditions"][0]["lastTransitionTime"],
            "2025-06-01T12:02:00Z"
        );
        assert!(
            flipped["conditions"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("cdi: reading /etc/cdi/x.yaml"))
        );
    }

    #[test]
    fn heartbeat_moves_only_the_heartbeat() {
        let snapshot = Snapshot::new(observed("580.95.05"), vec![]);
        let current = desired(&snapshot, "v", now(), &json!({}));
        let later = now()
            .checked_add(jiff::SignedDuration::from_secs(300))
            .expect("in range");
        let patch = merge_diff(&current, &heartbeat(&current, later));
        assert_eq!(
            patch,
            Some(json!({"lastHeartbeatTime": "2025-06-01T12:05:00Z"}))
        );
        assert_eq!(heartbeat_of(&heartbeat(&current, later)), Some(later));
    }
}
