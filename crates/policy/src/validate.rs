//! Policy validation beyond the CRD schema.
//!
//! The schema already refuses most mistakes at `kubectl apply`, but a policy
//! can also arrive from a file (`plumbline check --policy`) or from an API
//! server that skipped the CEL rules, and some checks need code: that a
//! version actually parses, that a pattern can ever match. An invalid policy
//! is never acted on; the controller writes these errors into the policy's
//! `Valid` condition.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use plumbline_api::{Action, GpuFleetPolicySpec, Requirements, TaintEffect};
use plumbline_compat::{CudaVersion, DriverVersion, ToolkitVersion};

use crate::select::selector_errors;
use crate::text::{PartMatch, VersionPattern, parse_duration};

/// One problem with a policy, naming the field (`spec.actions.maxUnavailable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// `maxUnavailable` in one of its two forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxUnavailable {
    Count(u32),
    /// 0 to 100.
    Percent(u32),
}

impl MaxUnavailable {
    /// Parses an integer `>= 0` or a string `N%` with `0 <= N <= 100`.
    pub fn parse(value: &IntOrString) -> Result<MaxUnavailable, String> {
        match value {
            IntOrString::Int(n) => u32::try_from(*n)
                .map(MaxUnavailable::Count)
                .map_err(|_| format!("must not be negative, found {n}")),
            IntOrString::String(s) => {
                let digits = s.strip_suffix('%').ok_or_else(|| {
                    format!("{s:?} is neither an integer nor a percentage such as \"10%\"")
                })?;
                match digits.parse::<u32>() {
                    Ok(p) if p <= 100 && !digits.starts_with('+') => Ok(MaxUnavailable::Percent(p)),
                    _ => Err(format!("{s:?} is not a percentage from 0% to 100%")),
                }
            }
        }
    }

    /// The number of nodes this allows out of `selected`.
    ///
    /// A percentage rounds down, like a Deployment's `maxUnavailable`, with
    /// one exception: a non-zero percentage of a non-empty pool allows at
    /// least one node. Otherwise `10%` of a pool of five would silently
    /// disable every disruptive action, which is never what was written.
    pub fn resolve(&self, selected: u32) -> u32 {
        match *self {
            MaxUnavailable::Count(n) => n,
            MaxUnavailable::Percent(p) => {
                let floor = u64::from(selected) * u64::from(p) / 100;
                let floor = u32::try_from(floor).unwrap_or(u32::MAX);
                if floor == 0 && p > 0 && selected > 0 {
                    1
                } else {
                    floor
                }
            }
        }
    }
}

/// Whether an action list asks for something disruptive enough to need a
/// budget: `Cordon`, or `Taint` with an effect that keeps pods off the node
/// (as the schema's CEL rule has it).
pub fn needs_budget(actions: &[Action], taint_effect: TaintEffect) -> bool {
    actions.iter().any(|a| match a {
        Action::Cordon => true,
        Action::Taint => taint_effect.is_disruptive(),
        Action::Label | Action::Condition => false,
    })
}

/// Checks everything the schema cannot. `Ok` means the policy may be acted
/// on; otherwise every problem is listed, in field order.
pub fn validate_policy(spec: &GpuFleetPolicySpec) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if let Some(selector) = &spec.node_selector {
        errors.extend(selector_errors(selector, "spec.nodeSelector"));
    }
    validate_requirements(&spec.requirements, &mut errors);

    let actions = &spec.actions;
    match parse_duration(&actions.stale_after) {
        None => errors.push(FieldError::new(
            "spec.actions.staleAfter",
            format!(
                "{:?} is not a duration such as \"15m\" or \"1h30m\"",
                actions.stale_after
            ),
        )),
        Some(d) if d.is_zero() => errors.push(FieldError::new(
            "spec.actions.staleAfter",
            "must be longer than zero, or every baseline would be stale",
        )),
        Some(_) => {}
    }
    if let Some(grace) = &actions.grace_period
        && parse_duration(grace).is_none()
    {
        errors.push(FieldError::new(
            "spec.actions.gracePeriod",
            format!("{grace:?} is not a duration such as \"10m\" or \"1h\""),
        ));
    }
    match &actions.max_unavailable {
        Some(value) => {
            if let Err(message) = MaxUnavailable::parse(value) {
                errors.push(FieldError::new("spec.actions.maxUnavailable", message));
            }
        }
        None => {
            for (field, list) in [
                ("onDrift", &actions.on_drift),
                ("onUnknown", &actions.on_unknown),
            ] {
                if needs_budget(list, actions.taint_effect) {
                    errors.push(FieldError::new(
                        "spec.actions.maxUnavailable",
                        format!(
                            "{field} with Cordon, or Taint with a NoSchedule or NoExecute effect, needs maxUnavailable, so that a bad policy can never take down the whole fleet"
                        ),
                    ));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn driver_pattern_error(pattern: &str) -> Option<String> {
    match VersionPattern::parse(pattern, PartMatch::Numeric) {
        None => Some(format!(
            "{pattern:?} is not a driver version or pattern such as \"580.95.05\" or \"580.*\""
        )),
        Some(p) if p.len() == 1 && !p.has_wildcard() => Some(format!(
            "{pattern:?} can never match a driver version (they have two or three parts); write \"{pattern}.*\" or use branches: [{pattern}]"
        )),
        Some(_) => None,
    }
}

fn validate_requirements(req: &Requirements, errors: &mut Vec<FieldError>) {
    let at = "spec.requirements";
    if let Some(driver) = &req.driver {
        for (i, v) in driver.versions.iter().enumerate() {
            if let Some(message) = driver_pattern_error(v) {
                errors.push(FieldError::new(
                    format!("{at}.driver.versions[{i}]"),
                    message,
                ));
            }
        }
        for (i, b) in driver.branches.iter().enumerate() {
            if *b == 0 {
                errors.push(FieldError::new(
                    format!("{at}.driver.branches[{i}]"),
                    "a driver branch is a positive number such as 580",
                ));
            }
        }
        if let Some(min) = &driver.min_version
            && let Err(e) = DriverVersion::parse(min)
        {
            errors.push(FieldError::new(
                format!("{at}.driver.minVersion"),
                e.to_string(),
            ));
        }
    }
    if let Some(cuda) = &req.cuda {
        if let Some(min) = &cuda.min_ceiling
            && let Err(e) = CudaVersion::parse(min)
        {
            errors.push(FieldError::new(
                format!("{at}.cuda.minCeiling"),
                e.to_string(),
            ));
        }
        let mut names = BTreeSet::new();
        for (i, w) in cuda.workloads.iter().enumerate() {
            if w.name.is_empty() {
                errors.push(FieldError::new(
                    format!("{at}.cuda.workloads[{i}].name"),
                    "a workload needs a name",
                ));
            } else if !names.insert(w.name.as_str()) {
                errors.push(FieldError::new(
                    format!("{at}.cuda.workloads[{i}].name"),
                    format!("workload {:?} is listed twice", w.name),
                ));
            }
            if let Err(e) = CudaVersion::parse(&w.cuda_version) {
                errors.push(FieldError::new(
                    format!("{at}.cuda.workloads[{i}].cudaVersion"),
                    e.to_string(),
                ));
            }
        }
    }
    if let Some(toolkit) = &req.toolkit {
        for (i, v) in toolkit.versions.iter().enumerate() {
            if VersionPattern::parse(v, PartMatch::Numeric)
                .is_none_or(|p| p.len() < 2 && !p.has_wildcard())
            {
                errors.push(FieldError::new(
                    format!("{at}.toolkit.versions[{i}]"),
                    format!(
                        "{v:?} is not a toolkit version or pattern such as \"12.8\" or \"12.*\""
                    ),
                ));
            }
        }
    }
    if let Some(ctk) = &req.container_toolkit
        && let Some(min) = &ctk.min_version
        && let Err(e) = ToolkitVersion::parse(min)
    {
        errors.push(FieldError::new(
            format!("{at}.containerToolkit.minVersion"),
            e.to_string()
                .replace("toolkit version", "Container Toolkit version"),
        ));
    }
    if let Some(kernel) = &req.kernel {
        for (i, v) in kernel.versions.iter().enumerate() {
            if v.is_empty() {
                errors.push(FieldError::new(
                    format!("{at}.kernel.versions[{i}]"),
                    "an empty kernel release pattern matches nothing",
                ));
            }
        }
    }
    if let Some(os) = &req.os {
        for (i, id) in os.ids.iter().enumerate() {
            if id.is_empty() {
                errors.push(FieldError::new(
                    format!("{at}.os.ids[{i}]"),
                    "an empty OS id matches nothing",
                ));
            }
        }
        for (i, v) in os.versions.iter().enumerate() {
            if VersionPattern::parse(v, PartMatch::Exact).is_none() {
                errors.push(FieldError::new(
                    format!("{at}.os.versions[{i}]"),
                    format!("{v:?} is not a VERSION_ID or pattern such as \"24.04\" or \"9.*\""),
                ));
            }
        }
    }
    if let Some(window) = &req.upgrade_window {
        if window.driver_versions.is_empty() {
            errors.push(FieldError::new(
                format!("{at}.upgradeWindow.driverVersions"),
                "an upgrade window needs at least one driver version",
            ));
        }
        for (i, v) in window.driver_versions.iter().enumerate() {
            if let Some(message) = driver_pattern_error(v) {
                errors.push(FieldError::new(
                    format!("{at}.upgradeWindow.driverVersions[{i}]"),
                    message,
                ));
            }
        }
        let constrained = req.driver.as_ref().is_some_and(|d| {
            !d.versions.is_empty() || !d.branches.is_empty() || d.min_version.is_some()
        });
        if !constrained {
            errors.push(FieldError::new(
                format!("{at}.upgradeWindow"),
                "an upgrade window widens requirements.driver.versions, branches or minVersion, and none is set",
            ));
        }
    }
}
