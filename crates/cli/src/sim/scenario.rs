//! The scenarios: which fleet is built, which policies are applied, and
//! what each node's verdict must be once the fleet has converged.
//!
//! The policies are the project's examples (`deploy/examples/*.yaml`),
//! embedded in the binary, plus the bad policy of the `bad-policy`
//! scenario. Two edits make them show their effect within a run: every
//! `gracePeriod` is shortened to [`SIM_GRACE`], and an upgrade window that
//! has already closed is reopened for a day. Both are printed.

use std::collections::BTreeSet;

use anyhow::Context;
use jiff::Timestamp;
use plumbline_api::{GpuFleetPolicy, VerdictState};
use plumbline_sim::fleet::{self, FleetSpec, GeneratedNode, Profile};

/// The simulated world to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// A fleet of several GPU generations, branches and runtimes, some
    /// hosts built with a mistake, under the example policies.
    Mixed,
    /// The whole fleet on 580.95.05, rolled to 595.58.03 wave by wave
    /// inside an upgrade window: each node goes through a pending reboot
    /// (drift) and comes back compliant.
    RollingUpgrade,
    /// The mixed fleet, plus a policy that would cordon nearly every node;
    /// the disruption budget holds it back.
    BadPolicy,
    /// The mixed fleet at thousands of nodes.
    Scale,
}

/// What every `gracePeriod` becomes, so taints and cordons happen in seconds.
pub const SIM_GRACE: &str = "3s";

/// The driver the rolling upgrade installs.
pub const ROLLOUT_TO: &str = "595.58.03";

/// A policy file embedded in the binary.
#[derive(Debug, Clone, Copy)]
pub struct PolicyFile {
    /// Where it lives in the repository.
    pub file: &'static str,
    pub text: &'static str,
}

const PIN_DRIVER_BRANCH: PolicyFile = PolicyFile {
    file: "deploy/examples/pin-driver-branch.yaml",
    text: include_str!("../../../../deploy/examples/pin-driver-branch.yaml"),
};
const GATE_CUDA: PolicyFile = PolicyFile {
    file: "deploy/examples/gate-cuda-12-8-workload.yaml",
    text: include_str!("../../../../deploy/examples/gate-cuda-12-8-workload.yaml"),
};
const MODULE_FLAVOUR: PolicyFile = PolicyFile {
    file: "deploy/examples/require-open-module.yaml",
    text: include_str!("../../../../deploy/examples/require-open-module.yaml"),
};
const UPGRADE_WINDOW: PolicyFile = PolicyFile {
    file: "deploy/examples/upgrade-window.yaml",
    text: include_str!("../../../../deploy/examples/upgrade-window.yaml"),
};
const PIN_595_EVERYWHERE: PolicyFile = PolicyFile {
    file: "crates/cli/src/sim/policies/pin-595-everywhere.yaml",
    text: include_str!("policies/pin-595-everywhere.yaml"),
};

impl Scenario {
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Mixed => "mixed",
            Scenario::RollingUpgrade => "rolling-upgrade",
            Scenario::BadPolicy => "bad-policy",
            Scenario::Scale => "scale",
        }
    }

    pub fn default_nodes(self) -> usize {
        match self {
            Scenario::Scale => 2000,
            _ => 50,
        }
    }

    pub fn fleet(self, nodes: usize, seed: u64) -> FleetSpec {
        let (profile, violation_percent) = match self {
            Scenario::Mixed | Scenario::BadPolicy => (Profile::Mixed, 30),
            // A large fleet is mostly healthy.
            Scenario::Scale => (Profile::Mixed, 10),
            Scenario::RollingUpgrade => (Profile::Rollout, 0),
        };
        FleetSpec {
            nodes,
            seed,
            profile,
            violation_percent,
        }
    }

    /// The policies applied. The example `dry-run-baseline.yaml` is left
    /// out: it selects every node at priority -10, so under
    /// `require-open-module.yaml` it would govern nothing.
    pub fn policy_files(self) -> &'static [PolicyFile] {
        match self {
            Scenario::Mixed | Scenario::Scale => &[PIN_DRIVER_BRANCH, GATE_CUDA, MODULE_FLAVOUR],
            Scenario::BadPolicy => &[
                PIN_DRIVER_BRANCH,
                GATE_CUDA,
                MODULE_FLAVOUR,
                PIN_595_EVERYWHERE,
            ],
            Scenario::RollingUpgrade => &[UPGRADE_WINDOW],
        }
    }

    /// The policy the `bad-policy` scenario is about.
    pub fn bad_policy(self) -> Option<&'static str> {
        (self == Scenario::BadPolicy).then_some("pin-595-everywhere")
    }
}

/// A policy as the simulator applies it.
#[derive(Debug, Clone)]
pub struct AppliedPolicy {
    pub file: &'static str,
    pub policy: GpuFleetPolicy,
    /// What the simulator changed, for the header.
    pub notes: Vec<String>,
}

impl AppliedPolicy {
    pub fn name(&self) -> &str {
        self.policy.metadata.name.as_deref().unwrap_or("")
    }
}

/// Parses and validates a scenario's policies, and makes their time scales
/// fit a run of seconds.
pub fn load_policies(scenario: Scenario, now: Timestamp) -> anyhow::Result<Vec<AppliedPolicy>> {
    let mut out = Vec::new();
    for f in scenario.policy_files() {
        let policy = plumbline_policy::parse_policy(f.text, f.file)
            .with_context(|| format!("loading the embedded policy {}", f.file))?;
        let mut value = serde_json::to_value(&policy).context("serializing a policy")?;
        let mut notes = Vec::new();
        if let Some(grace) = value.pointer_mut("/spec/actions/gracePeriod")
            && let Some(old) = grace.as_str().map(str::to_owned)
        {
            notes.push(format!("gracePeriod {old} shortened to {SIM_GRACE}"));
            *grace = SIM_GRACE.into();
        }
        if let Some(until) = value.pointer_mut("/spec/requirements/upgradeWindow/until")
            && let Some(t) = until.as_str().and_then(|s| s.parse::<Timestamp>().ok())
            && t < now + jiff::SignedDuration::from_hours(1)
        {
            let reopened = now + jiff::SignedDuration::from_hours(24);
            notes.push(format!(
                "upgrade window closed at {t}, reopened until {reopened}"
            ));
            *until = reopened.to_string().into();
        }
        let policy: GpuFleetPolicy =
            serde_json::from_value(value).context("reading back an adjusted policy")?;
        out.push(AppliedPolicy {
            file: f.file,
            policy,
            notes,
        });
    }
    Ok(out)
}

/// What a node's verdict must be once the fleet has converged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The governing policy (`None`: unmanaged).
    pub policy: Option<String>,
    pub state: VerdictState,
    /// Rules the verdict must report (it may report more as a
    /// consequence, e.g. uniformity after a module did not reload).
    pub rules: BTreeSet<&'static str>,
}

/// The verdict `node` must get under `policies`, from what it was built to
/// violate and which of those its governing policy checks.
pub fn expected(node: &GeneratedNode, policies: &[GpuFleetPolicy], now: Timestamp) -> Expected {
    let selection = plumbline_policy::select_policy(&node.labels, policies);
    match selection.policy {
        None => Expected {
            policy: None,
            state: VerdictState::Unmanaged,
            rules: BTreeSet::new(),
        },
        Some(p) => {
            let rules =
                fleet::expected_rules(&node.violations, &node.host, &p.spec.requirements, now);
            Expected {
                policy: p.metadata.name.clone(),
                state: if rules.is_empty() {
                    VerdictState::Compliant
                } else {
                    VerdictState::Drifting
                },
                rules,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_loads_its_policies_and_shortens_grace_periods() {
        let now: Timestamp = "2026-11-22T00:00:00Z".parse().expect("time");
        for scenario in [
            Scenario::Mixed,
            Scenario::RollingUpgrade,
            Scenario::BadPolicy,
            Scenario::Scale,
        ] {
            let policies = load_policies(scenario, now).expect("policies load");
            assert_eq!(policies.len(), scenario.policy_files().len());
            for p in &policies {
                if let Some(grace) = &p.policy.spec.actions.grace_period {
                    assert_eq!(grace, SIM_GRACE, "{}", p.file);
                }
            }
        }
        let late: Timestamp = "2027-06-01T00:00:00Z".parse().expect("time");
        let rolling = load_policies(Scenario::RollingUpgrade, late).expect("policies load");
        let window = rolling[0]
            .policy
            .spec
            .requirements
            .upgrade_window
            .as_ref()
            .expect("window");
        assert!(window.until.0 > late, "a closed window is reopened");
        assert!(!rolling[0].notes.is_empty());
    }

    #[test]
    fn a_healthy_node_is_expected_compliant_under_its_pools_policy() {
        let now: Timestamp = "2026-11-22T00:00:00Z".parse().expect("time");
        let policies: Vec<GpuFleetPolicy> = load_policies(Scenario::Mixed, now)
            .expect("policies load")
            .into_iter()
            .map(|p| p.policy)
            .collect();
        let fleet = fleet::generate(&Scenario::Mixed.fleet(50, 1));
        for node in &fleet {
            let e = expected(node, &policies, now);
            let want = match node.pool {
                fleet::Pool::H100Train => "h100-pin-580",
                fleet::Pool::Inference => "inference-cuda-12-8",
                _ => "module-flavour",
            };
            assert_eq!(e.policy.as_deref(), Some(want), "{}", node.name);
            if node.violations.is_empty() {
                assert_eq!(e.state, VerdictState::Compliant, "{}", node.name);
            }
        }
        assert!(
            fleet
                .iter()
                .any(|n| expected(n, &policies, now).state == VerdictState::Drifting)
        );
    }
}
