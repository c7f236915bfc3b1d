//! Which policy governs a node: label-selector matching and priority.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use plumbline_api::GpuFleetPolicy;

use crate::validate::{FieldError, validate_policy};

/// The label-selector operators Kubernetes allows in a `LabelSelector`.
pub const SELECTOR_OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

/// Whether a selector matches a node's labels, with Kubernetes' semantics:
/// no selector and the empty selector match every node; `matchLabels` and
/// every `matchExpressions` entry must all hold; `NotIn` and `DoesNotExist`
/// hold for a node without the key. A malformed selector (see
/// [`selector_errors`]) matches nothing, so that a typo can never widen a
/// policy to the whole fleet.
pub fn selector_matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    if !selector_errors(selector, "selector").is_empty() {
        return false;
    }
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|req| {
        let values = req.values.as_deref().unwrap_or_default();
        let have = labels.get(&req.key);
        match req.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            // selector_errors refused every other operator above.
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

/// What is wrong with a selector, each error naming its field under `at`.
pub fn selector_errors(selector: &LabelSelector, at: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (key, _) in selector.match_labels.iter().flatten() {
        if key.is_empty() {
            errors.push(FieldError::new(
                format!("{at}.matchLabels"),
                "a label key must not be empty",
            ));
        }
    }
    for (i, req) in selector.match_expressions.iter().flatten().enumerate() {
        let field = format!("{at}.matchExpressions[{i}]");
        if req.key.is_empty() {
            errors.push(FieldError::new(
                format!("{field}.key"),
                "a label key must not be empty",
            ));
        }
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errors.push(FieldError::new(
                format!("{field}.values"),
                format!("operator {} needs at least one value", req.operator),
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errors.push(FieldError::new(
                format!("{field}.values"),
                format!("operator {} takes no values", req.operator),
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errors.push(FieldError::new(
                format!("{field}.operator"),
                format!(
                    "unknown operator {other:?}, expected one of {}",
                    SELECTOR_OPERATORS.join(", ")
                ),
            )),
        }
    }
    errors
}

/// The outcome of choosing a policy for a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection<'a> {
    /// The governing policy; `None` when no valid policy selects the node
    /// (the node is then `Unmanaged` and released).
    pub policy: Option<&'a GpuFleetPolicy>,
    /// Other valid policies of the winner's priority that also select the
    /// node, sorted by name. Non-empty means a conflict: the verdict
    /// reports it and the plan holds back new disruptive actions.
    pub conflicting: Vec<String>,
}

impl Selection<'_> {
    /// Name of the governing policy.
    pub fn policy_name(&self) -> Option<&str> {
        self.policy.and_then(|p| p.metadata.name.as_deref())
    }
}

/// Chooses the policy that governs a node with these labels.
///
/// Only policies that pass [`validate_policy`] take part: an invalid policy
/// is never acted on, not even to claim nodes. The highest `priority` wins.
/// On a tie the policy whose name sorts first governs (so that the answer
/// never depends on list order) and the others are reported as conflicting.
pub fn select_policy<'a>(
    node_labels: &BTreeMap<String, String>,
    policies: &'a [GpuFleetPolicy],
) -> Selection<'a> {
    let mut matching: Vec<&'a GpuFleetPolicy> = policies
        .iter()
        .filter(|p| p.metadata.name.is_some())
        .filter(|p| validate_policy(&p.spec).is_ok())
        .filter(|p| selector_matches(p.spec.node_selector.as_ref(), node_labels))
        .collect();
    matching.sort_by(|a, b| {
        b.spec
            .priority
            .cmp(&a.spec.priority)
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    let Some(winner) = matching.first().copied() else {
        return Selection {
            policy: None,
            conflicting: Vec::new(),
        };
    };
    let conflicting = matching
        .iter()
        .skip(1)
        .filter(|p| p.spec.priority == winner.spec.priority)
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    Selection {
        policy: Some(winner),
        conflicting,
    }
}
