//! `evaluate`: one node's baseline against its policy, as a `Verdict`.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use plumbline_api::keys::{probes, rules};
use plumbline_api::{
    CdiRequirements, ContainerToolkitRequirements, CudaRequirements, DriverRequirements,
    FabricManagerRequirement, Finding, GpuFleetPolicySpec, KernelModule, KernelModuleRequirement,
    NodeGpuBaselineStatus, Observed, ProbeResult, ProbeStatus, Requirements, RuntimeObserved,
    RuntimeRequirement, SecureBootRequirement, ToolkitRequirements, UniformityKey, Verdict,
    VerdictState,
};
use plumbline_compat::{
    Architecture, CompatDb, CudaVersion, DriverVersion, ModuleNeed, ToolkitVersion,
};

use crate::fleet::{FleetView, Reference, uniformity_probe, uniformity_value};
use crate::gpu::{GpuIdentity, effective_ceiling, identify_gpus};
use crate::text::{PartMatch, VersionPattern, glob_matches, parse_duration};

/// `staleAfter` when the policy's own value does not parse (validation
/// refuses such a policy; this only keeps evaluation total).
const FALLBACK_STALE_AFTER: SignedDuration = SignedDuration::from_mins(15);

/// The CDI kind NVIDIA's specs declare.
const NVIDIA_CDI_KIND: &str = "nvidia.com/gpu";

/// Everything one evaluation needs. Nothing here is read from anywhere:
/// the caller gathers it, so evaluation is a pure function.
#[derive(Debug, Clone, Copy)]
pub struct EvalInput<'a> {
    /// Name of the governing policy.
    pub policy_name: &'a str,
    pub spec: &'a GpuFleetPolicySpec,
    /// The node's baseline status; `None` when the node has no baseline.
    /// Its `verdict` (the previous one) carries `since` forward.
    pub baseline: Option<&'a NodeGpuBaselineStatus>,
    /// The policy's pool, for uniformity.
    pub fleet: &'a FleetView,
    pub now: Timestamp,
    pub compat: &'a CompatDb,
    /// Other policies of equal priority selecting the node
    /// ([`crate::Selection::conflicting`]).
    pub conflicting_policies: &'a [String],
}

/// Whether a finding shows drift or only that something cannot be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Severity {
    Drift,
    Unknown,
}

/// Judges a node.
///
/// - no baseline (or one without `observed`) → `Unknown`, `agent.baseline`;
/// - a heartbeat older than `actions.staleAfter` → `Unknown`,
///   `agent.heartbeat` (old data never makes a node `Drifting`);
/// - otherwise every requirement is checked. A rule whose probe failed is
///   not checked; the failure is a `probe.error` finding. Any drift finding
///   makes the node `Drifting` (what is known to be wrong is wrong, whatever
///   else cannot be told); else any unknown finding makes it `Unknown`;
///   else it is `Compliant`.
pub fn evaluate(input: &EvalInput<'_>) -> Verdict {
    let previous = input.baseline.and_then(|b| b.verdict.as_ref());
    let judged = judge(input);
    let state = state_of(&judged);
    let findings = judged.into_iter().map(|(_, f)| f).collect();
    let since = match previous {
        Some(prev) if prev.state == state && prev.since.is_some() => prev.since.clone(),
        _ => Some(Time(input.now)),
    };
    Verdict {
        state,
        policy: Some(input.policy_name.to_string()),
        conflicting_policies: input.conflicting_policies.to_vec(),
        findings,
        since,
    }
}

/// The verdict for a node no policy governs (or marked unmanaged).
pub fn unmanaged_verdict() -> Verdict {
    Verdict {
        state: VerdictState::Unmanaged,
        ..Verdict::default()
    }
}

fn state_of(judged: &[(Severity, Finding)]) -> VerdictState {
    if judged.iter().any(|(s, _)| *s == Severity::Drift) {
        VerdictState::Drifting
    } else if judged.is_empty() {
        VerdictState::Compliant
    } else {
        VerdictState::Unknown
    }
}

fn judge(input: &EvalInput<'_>) -> Vec<(Severity, Finding)> {
    let Some(status) = input.baseline else {
        return vec![(
            Severity::Unknown,
            finding(
                rules::BASELINE_MISSING,
                Some("a NodeGpuBaseline from the Plumbline agent"),
                Some("none"),
                "the node has no NodeGpuBaseline: check that the Plumbline agent DaemonSet runs on it (tolerations, nodeSelector) and look at its logs".to_string(),
            ),
        )];
    };
    let Some(observed) = &status.observed else {
        return vec![(
            Severity::Unknown,
            finding(
                rules::BASELINE_MISSING,
                Some("an observed GPU stack"),
                Some("none"),
                "the node's NodeGpuBaseline has no observation yet: the agent has not finished its first probe; look at the agent's logs on the node".to_string(),
            ),
        )];
    };
    let stale_after =
        parse_duration(&input.spec.actions.stale_after).unwrap_or(FALLBACK_STALE_AFTER);
    match &status.last_heartbeat_time {
        None => {
            return vec![(
                Severity::Unknown,
                finding(
                    rules::HEARTBEAT_STALE,
                    Some(&format!("a heartbeat within {}", input.spec.actions.stale_after)),
                    Some("no heartbeat"),
                    "the agent never sent a heartbeat for this node: check that it runs and can write NodeGpuBaselines".to_string(),
                ),
            )];
        }
        Some(Time(beat)) => {
            let age = input.now.duration_since(*beat);
            if age > stale_after {
                return vec![(
                    Severity::Unknown,
                    finding(
                        rules::HEARTBEAT_STALE,
                        Some(&format!(
                            "a heartbeat within {}",
                            input.spec.actions.stale_after
                        )),
                        Some(&format!("last heartbeat {beat}")),
                        format!(
                            "the agent's last heartbeat was {} ago (at {beat}), longer than staleAfter {}: check the agent pod on the node",
                            human(age),
                            input.spec.actions.stale_after
                        ),
                    ),
                )];
            }
        }
    }
    check_observed(
        &input.spec.requirements,
        observed,
        &status.probes,
        input.fleet,
        input.now,
        input.compat,
    )
}

/// A duration for people: `2h5m`, `40s`.
fn human(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

fn finding(rule: &str, expected: Option<&str>, observed: Option<&str>, message: String) -> Finding {
    Finding {
        rule: rule.to_string(),
        expected: expected.map(str::to_string),
        observed: observed.map(str::to_string),
        message,
    }
}

/// Checks every requirement against an observation. Findings come back in
/// the order of [`rules::ALL`].
fn check_observed(
    req: &Requirements,
    observed: &Observed,
    probe_results: &[ProbeResult],
    fleet: &FleetView,
    now: Timestamp,
    compat: &CompatDb,
) -> Vec<(Severity, Finding)> {
    let mut c = Checker {
        obs: observed,
        probes: probe_results,
        now,
        compat,
        out: Vec::new(),
        blocked: BTreeMap::new(),
        gpus: identify_gpus(observed, compat),
    };
    let driver = c.driver_state(req);
    if req.driver.is_some() || req.cuda.is_some() {
        c.driver_present(&driver);
    }
    if let Some(d) = &req.driver {
        c.driver_rules(d, req, &driver);
    }
    if req.driver.is_some() || req.cuda.is_some() {
        c.unsupported_gpu(&driver);
    }
    if let Some(cuda) = &req.cuda {
        c.cuda_rules(cuda, &driver);
    }
    if let Some(t) = &req.toolkit {
        c.toolkit_rules(t, &driver);
    }
    if let Some(ctk) = &req.container_toolkit {
        c.container_toolkit_rules(ctk);
    }
    if let Some(cdi) = &req.cdi {
        c.cdi_rules(cdi, &driver);
    }
    c.host_rules(req);
    if let Some(fm) = req.fabric_manager {
        c.fabric_manager(fm, &driver);
    }
    c.uniformity(req, fleet);
    c.finish()
}

/// What is known of the loaded driver.
enum DriverState {
    /// No module loaded (or the policy does not look at the driver).
    Absent,
    /// Loaded, but its version is missing or does not parse.
    Unreadable,
    Loaded(DriverVersion),
}

struct Checker<'a> {
    obs: &'a Observed,
    probes: &'a [ProbeResult],
    now: Timestamp,
    compat: &'a CompatDb,
    out: Vec<(Severity, Finding)>,
    /// Failed probe → the rules it kept from being checked.
    blocked: BTreeMap<&'a str, BTreeSet<&'static str>>,
    gpus: Vec<GpuIdentity>,
}

impl<'a> Checker<'a> {
    /// Whether `rule` may be checked: none of the probes it needs failed.
    /// Records the failures otherwise.
    fn ready(&mut self, rule: &'static str, needs: &[&str]) -> bool {
        let mut ok = true;
        for probe in self.probes {
            if probe.status == ProbeStatus::Error && needs.contains(&probe.name.as_str()) {
                self.blocked
                    .entry(probe.name.as_str())
                    .or_default()
                    .insert(rule);
                ok = false;
            }
        }
        ok
    }

    fn probe_ok(&self, name: &str) -> bool {
        !self
            .probes
            .iter()
            .any(|p| p.name == name && p.status == ProbeStatus::Error)
    }

    fn drift(&mut self, rule: &str, expected: &str, observed: &str, message: String) {
        self.out.push((
            Severity::Drift,
            finding(rule, Some(expected), Some(observed), message),
        ));
    }

    fn unknown(
        &mut self,
        rule: &str,
        expected: Option<&str>,
        observed: Option<&str>,
        message: String,
    ) {
        self.out.push((
            Severity::Unknown,
            finding(rule, expected, observed, message),
        ));
    }

    fn finish(mut self) -> Vec<(Severity, Finding)> {
        for (probe, blocked_rules) in std::mem::take(&mut self.blocked) {
            let message = self
                .probes
                .iter()
                .find(|p| p.name == probe)
                .and_then(|p| p.message.clone())
                .unwrap_or_else(|| "no message".to_string());
            let blocked: Vec<&str> = blocked_rules.into_iter().collect();
            self.out.push((
                Severity::Unknown,
                finding(
                    rules::PROBE_ERROR,
                    Some(&format!("probe {probe} Ok or Absent")),
                    Some(&format!("probe {probe} Error")),
                    format!(
                        "probe `{probe}` failed ({message}), so {} cannot be checked: fix what the message names on the node, or look at the agent's log",
                        blocked.join(", ")
                    ),
                ),
            ));
        }
        let order = |rule: &str| {
            rules::ALL
                .iter()
                .position(|r| *r == rule)
                .unwrap_or(usize::MAX)
        };
        self.out.sort_by_key(|(_, f)| order(&f.rule));
        self.out
    }

    fn driver_state(&mut self, req: &Requirements) -> DriverState {
        let needed = req.driver.is_some() || req.cuda.is_some();
        if !needed && req.toolkit.is_none() && req.cdi.is_none() && req.fabric_manager.is_none() {
            return DriverState::Absent;
        }
        if !self.probe_ok(probes::KERNEL_MODULE) || !self.obs.driver.loaded {
            return DriverState::Absent;
        }
        match self.obs.driver.version.as_deref().map(DriverVersion::parse) {
            Some(Ok(v)) => DriverState::Loaded(v),
            other => {
                if needed {
                    let (observed, why) = match other {
                        Some(Err(e)) => (
                            self.obs.driver.version.clone().unwrap_or_default(),
                            e.to_string(),
                        ),
                        _ => ("none".to_string(), "no version was reported".to_string()),
                    };
                    self.unknown(
                        rules::DRIVER_VERSION,
                        Some("a driver version such as 580.95.05"),
                        Some(&observed),
                        format!(
                            "a driver is loaded but its version cannot be read ({why}), so no driver rule can be checked: look at /proc/driver/nvidia/version on the node"
                        ),
                    );
                }
                DriverState::Unreadable
            }
        }
    }

    // -- driver --------------------------------------------------------------

    /// Checked whenever the policy has driver or CUDA requirements: none of
    /// them can hold without a driver.
    fn driver_present(&mut self, driver: &DriverState) {
        if self.ready(rules::DRIVER_PRESENT, &[probes::KERNEL_MODULE])
            && matches!(driver, DriverState::Absent)
        {
            self.drift(
                rules::DRIVER_PRESENT,
                "a loaded NVIDIA kernel module",
                "no driver loaded",
                "no NVIDIA kernel module is loaded: install the driver, or load it with `modprobe nvidia` and look at `dmesg` for why it failed".to_string(),
            );
        }
    }

    fn driver_rules(&mut self, d: &DriverRequirements, req: &Requirements, driver: &DriverState) {
        let DriverState::Loaded(v) = driver else {
            return;
        };
        if self.ready(rules::DRIVER_VERSION, &[probes::KERNEL_MODULE]) {
            self.driver_version(d, req, v);
        }
        if !d.allow_mismatch
            && self.ready(
                rules::DRIVER_MISMATCH,
                &[probes::KERNEL_MODULE, probes::USERSPACE],
            )
        {
            self.driver_mismatch(v);
        }
        if let Some(module) = d.kernel_module {
            let needs: &[&str] = if module == KernelModuleRequirement::Auto {
                &[probes::KERNEL_MODULE, probes::GPUS]
            } else {
                &[probes::KERNEL_MODULE]
            };
            if self.ready(rules::DRIVER_KERNEL_MODULE, needs) {
                self.kernel_module(module, v);
            }
        }
    }

    fn driver_version(&mut self, d: &DriverRequirements, req: &Requirements, v: &DriverVersion) {
        let text = v.to_string();
        let constrained =
            !d.versions.is_empty() || !d.branches.is_empty() || d.min_version.is_some();
        if !constrained {
            return;
        }
        let matches_any = |patterns: &[String]| {
            patterns.iter().any(|p| {
                VersionPattern::parse(p, PartMatch::Numeric)
                    .is_some_and(|p| p.matches(&text, PartMatch::Numeric))
            })
        };
        let mut reasons = Vec::new();
        let mut wanted = Vec::new();
        if !d.versions.is_empty() {
            wanted.push(format!("one of {}", d.versions.join(", ")));
            if !matches_any(&d.versions) {
                reasons.push(format!("is not one of {}", d.versions.join(", ")));
            }
        }
        if !d.branches.is_empty() {
            let branches: Vec<String> = d.branches.iter().map(u32::to_string).collect();
            wanted.push(format!("branch {}", branches.join(" or ")));
            if !d.branches.contains(&v.branch()) {
                reasons.push(format!(
                    "is on branch {}, not {}",
                    v.branch(),
                    branches.join(" or ")
                ));
            }
        }
        let min = d
            .min_version
            .as_deref()
            .and_then(|m| DriverVersion::parse(m).ok());
        if let Some(min) = &min {
            wanted.push(format!("at least {min}"));
            if v < min {
                reasons.push(format!("is older than the minimum {min}"));
            }
        }
        if reasons.is_empty() {
            return;
        }
        let expected = wanted.join(", ");
        if let Some(window) = &req.upgrade_window
            && matches_any(&window.driver_versions)
        {
            let until = window.until.0;
            if self.now < until {
                return;
            }
            self.drift(
                rules::DRIVER_VERSION,
                &expected,
                &text,
                format!(
                    "driver {text} was allowed by the upgrade window until {until}, which has closed; the policy now wants {expected}: finish the rollout, or extend upgradeWindow.until"
                ),
            );
            return;
        }
        let advice = if min.as_ref().is_some_and(|m| v < m) {
            "upgrade the driver"
        } else {
            "install an allowed driver"
        };
        self.drift(
            rules::DRIVER_VERSION,
            &expected,
            &text,
            format!(
                "driver {text} {}: {advice} ({expected})",
                reasons.join(" and ")
            ),
        );
    }

    fn driver_mismatch(&mut self, v: &DriverVersion) {
        let userspace = self.obs.driver.userspace_version.as_deref();
        let differs = userspace
            .and_then(|u| DriverVersion::parse(u).ok())
            .is_some_and(|u| &u != v);
        if !(self.obs.driver.mismatch || differs) {
            return;
        }
        let observed = format!(
            "kernel module {v}, userspace {}",
            userspace.unwrap_or("unknown")
        );
        self.drift(
            rules::DRIVER_MISMATCH,
            "userspace libraries at the kernel module's version",
            &observed,
            format!(
                "the userspace driver libraries are {} but the loaded kernel module is {v}: a reboot is pending after a driver change (nvidia-smi fails with \"Driver/library version mismatch\"); drain and reboot the node",
                userspace.unwrap_or("another version")
            ),
        );
    }

    fn kernel_module(&mut self, want: KernelModuleRequirement, v: &DriverVersion) {
        let have = self.obs.driver.kernel_module;
        if want == KernelModuleRequirement::Any {
            return;
        }
        if have == KernelModule::Unknown {
            self.unknown(
                rules::DRIVER_KERNEL_MODULE,
                None,
                Some("unknown"),
                "the kernel module flavour (open or proprietary) cannot be told: look at the first line of /proc/driver/nvidia/version on the node".to_string(),
            );
            return;
        }
        let wrong = |want: &str| {
            format!(
                "the {} kernel module is loaded but {want}: install the {want} flavour of driver {v} and reboot",
                have.as_str(),
                want = want
            )
        };
        match want {
            KernelModuleRequirement::Any => {}
            KernelModuleRequirement::Open if have != KernelModule::Open => {
                let msg = wrong("open").replace("but open", "but the policy requires the open one");
                self.drift(rules::DRIVER_KERNEL_MODULE, "open", have.as_str(), msg);
            }
            KernelModuleRequirement::Proprietary if have != KernelModule::Proprietary => {
                let msg = wrong("proprietary").replace(
                    "but proprietary",
                    "but the policy requires the proprietary one",
                );
                self.drift(
                    rules::DRIVER_KERNEL_MODULE,
                    "proprietary",
                    have.as_str(),
                    msg,
                );
            }
            KernelModuleRequirement::Open | KernelModuleRequirement::Proprietary => {}
            KernelModuleRequirement::Auto => self.kernel_module_auto(have, v),
        }
    }

    /// `auto`: the flavour every GPU can run with. Only a flavour a GPU
    /// cannot run with is drift; NVIDIA's preference for the open modules
    /// from 560 on Turing and newer is not (proprietary still works there).
    fn kernel_module_auto(&mut self, have: KernelModule, v: &DriverVersion) {
        let mut open_only: Vec<String> = Vec::new();
        let mut proprietary_only: Vec<String> = Vec::new();
        let mut unidentified: Vec<String> = Vec::new();
        for gpu in &self.gpus {
            let Some(info) = gpu.info() else {
                unidentified.push(gpu.product.clone());
                continue;
            };
            let why = if gpu.grace {
                format!("{} (Grace-coupled)", gpu.product)
            } else {
                format!("{} ({})", gpu.product, info.architecture)
            };
            match self.compat.module_need(&info) {
                ModuleNeed::Open => push_unique(&mut open_only, why),
                ModuleNeed::Proprietary => push_unique(&mut proprietary_only, why),
                ModuleNeed::Either { .. } => {}
            }
        }
        if !open_only.is_empty() && !proprietary_only.is_empty() {
            self.drift(
                rules::DRIVER_KERNEL_MODULE,
                "one flavour that drives every GPU",
                have.as_str(),
                format!(
                    "{} need the open kernel module and {} need the proprietary one; no single driver drives both: move one kind of GPU to another node",
                    open_only.join(", "),
                    proprietary_only.join(", ")
                ),
            );
            return;
        }
        if !open_only.is_empty() && have != KernelModule::Open {
            self.drift(
                rules::DRIVER_KERNEL_MODULE,
                "open",
                have.as_str(),
                format!(
                    "{} need the open kernel module, and the {} one is loaded: install the open flavour of driver {v} and reboot",
                    open_only.join(", "),
                    have.as_str()
                ),
            );
        } else if !proprietary_only.is_empty() && have != KernelModule::Proprietary {
            self.drift(
                rules::DRIVER_KERNEL_MODULE,
                "proprietary",
                have.as_str(),
                format!(
                    "{} need the proprietary kernel module (the open one supports Turing and newer only), and the {} one is loaded: install the proprietary flavour of driver {v} and reboot",
                    proprietary_only.join(", "),
                    have.as_str()
                ),
            );
        } else if !unidentified.is_empty() {
            self.unknown(
                rules::DRIVER_KERNEL_MODULE,
                None,
                Some(have.as_str()),
                format!(
                    "cannot tell which kernel module flavour {} need: the architecture is unknown; add the product to the compat data",
                    unidentified.join(", ")
                ),
            );
        }
    }

    fn unsupported_gpu(&mut self, driver: &DriverState) {
        let DriverState::Loaded(v) = driver else {
            return;
        };
        if !self.ready(
            rules::DRIVER_UNSUPPORTED_GPU,
            &[probes::KERNEL_MODULE, probes::GPUS],
        ) {
            return;
        }
        let mut by_arch: BTreeMap<Architecture, Vec<String>> = BTreeMap::new();
        for gpu in &self.gpus {
            if let Some(arch) = gpu.architecture {
                let products = by_arch.entry(arch).or_default();
                if !products.contains(&gpu.product) {
                    products.push(gpu.product.clone());
                }
            }
        }
        for (arch, products) in by_arch {
            let Some(last) = self.compat.last_branch_for(arch) else {
                continue;
            };
            if v.branch() > last {
                self.drift(
                    rules::DRIVER_UNSUPPORTED_GPU,
                    &format!("branch {last} or older for {arch}"),
                    &v.to_string(),
                    format!(
                        "driver {v} no longer supports {arch} GPUs ({}); the last branch that does is {last}: install a {last} driver, or move the GPUs to a node that may stay on it",
                        products.join(", ")
                    ),
                );
            }
        }
    }

    // -- CUDA ----------------------------------------------------------------

    fn ceiling(&self, v: &DriverVersion) -> Option<CudaVersion> {
        effective_ceiling(
            self.obs,
            v,
            self.compat,
            self.probe_ok(probes::CUDA_CEILING),
        )
    }

    fn unknown_ceiling(&mut self, rule: &'static str, v: &DriverVersion, subject: &str) {
        self.unknown(
            rule,
            None,
            Some(&v.to_string()),
            format!(
                "the CUDA ceiling of driver {v} is unknown (branch {} is not in the compat data and the node reported none), so {subject} cannot be checked: update the compat data",
                v.branch()
            ),
        );
    }

    fn cuda_rules(&mut self, cuda: &CudaRequirements, driver: &DriverState) {
        let DriverState::Loaded(v) = driver else {
            return;
        };
        if let Some(min) = cuda
            .min_ceiling
            .as_deref()
            .and_then(|m| CudaVersion::parse(m).ok())
            && self.ready(
                rules::CUDA_MIN_CEILING,
                &[probes::KERNEL_MODULE, probes::CUDA_CEILING],
            )
        {
            match self.ceiling(v) {
                None => self.unknown_ceiling(rules::CUDA_MIN_CEILING, v, "the minimum ceiling"),
                Some(ceiling) if ceiling < min => {
                    let fix = match self.compat.min_branch_for_ceiling(min) {
                        Some(b) => format!("upgrade the driver to branch {b} or newer"),
                        None => format!(
                            "upgrade the driver to a branch that supports CUDA {min} (none is in the compat data yet)"
                        ),
                    };
                    self.drift(
                        rules::CUDA_MIN_CEILING,
                        &format!("CUDA ceiling {min} or newer"),
                        &ceiling.to_string(),
                        format!(
                            "driver {v} supports CUDA up to {ceiling}; the policy needs at least {min}: {fix}"
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        if cuda.workloads.is_empty()
            || !self.ready(
                rules::CUDA_WORKLOAD,
                &[probes::KERNEL_MODULE, probes::CUDA_CEILING, probes::GPUS],
            )
        {
            return;
        }
        let ceiling = self.ceiling(v);
        for w in &cuda.workloads {
            let Ok(need) = CudaVersion::parse(&w.cuda_version) else {
                continue;
            };
            let Some(ceiling) = ceiling else {
                self.unknown_ceiling(rules::CUDA_WORKLOAD, v, &format!("workload `{}`", w.name));
                continue;
            };
            let mut problems = Vec::new();
            let mut observed = Vec::new();
            let compat_from = w
                .allow_minor_version_compat
                .then(|| self.compat.minor_compat_min_branch(need.major))
                .flatten();
            let runs = ceiling >= need
                || compat_from
                    .is_some_and(|from| ceiling.major == need.major && v.branch() >= from);
            if !runs {
                let native = self.compat.min_branch_for_ceiling(need);
                let needs_branch = match (compat_from, native) {
                    (Some(a), Some(b)) if ceiling.major == need.major || a < b => Some(a.min(b)),
                    (_, b) => b,
                };
                let fix = match needs_branch {
                    Some(b) => format!("upgrade the driver to branch {b} or newer"),
                    None => format!(
                        "upgrade the driver to a branch that supports CUDA {need} (none is in the compat data yet)"
                    ),
                };
                let compat_note = if w.allow_minor_version_compat && ceiling.major != need.major {
                    format!(
                        " (minor-version compatibility only helps within CUDA {})",
                        need.major
                    )
                } else {
                    String::new()
                };
                problems.push(format!(
                    "driver {v} supports CUDA up to {ceiling}; workload `{}` needs {need}{compat_note}: {fix}",
                    w.name
                ));
                observed.push(format!("ceiling {ceiling}"));
            }
            let mut seen = BTreeSet::new();
            for gpu in &self.gpus {
                let Some(cc) = gpu.compute_capability else {
                    continue;
                };
                if !seen.insert(cc) {
                    continue;
                }
                if self.compat.cuda_major_supports(need.major, cc) == Some(false) {
                    let arch = gpu
                        .architecture
                        .map(|a| a.name().to_string())
                        .unwrap_or_else(|| "these".to_string());
                    problems.push(format!(
                        "CUDA {} does not support {arch} GPUs ({}, compute capability {cc}): rebuild `{}` with a CUDA major that does, or run it on other GPUs",
                        need.major, gpu.product, w.name
                    ));
                    observed.push(format!("{arch} {cc}"));
                }
            }
            if !problems.is_empty() {
                self.drift(
                    rules::CUDA_WORKLOAD,
                    &format!("workload {} runs (CUDA {need})", w.name),
                    &observed.join(", "),
                    problems.join("; also "),
                );
            }
        }
    }

    // -- host toolkits ---------------------------------------------------------

    fn toolkit_rules(&mut self, t: &ToolkitRequirements, driver: &DriverState) {
        let toolkits = &self.obs.toolkits;
        if t.required
            && self.ready(rules::TOOLKIT_REQUIRED, &[probes::TOOLKITS])
            && toolkits.is_empty()
        {
            self.drift(
                rules::TOOLKIT_REQUIRED,
                "a CUDA toolkit under /usr/local",
                "none",
                "no host CUDA toolkit is installed: install one (e.g. the cuda-toolkit package) or drop toolkit.required".to_string(),
            );
        }
        if !t.versions.is_empty() && self.ready(rules::TOOLKIT_VERSION, &[probes::TOOLKITS]) {
            let patterns: Vec<VersionPattern> = t
                .versions
                .iter()
                .filter_map(|p| VersionPattern::parse(p, PartMatch::Numeric))
                .collect();
            let offenders: Vec<String> = toolkits
                .iter()
                .filter(|tk| {
                    !patterns.iter().any(|p| {
                        p.matches(&tk.version, PartMatch::Numeric)
                            || tk
                                .full_version
                                .as_deref()
                                .is_some_and(|full| p.matches(full, PartMatch::Numeric))
                    })
                })
                .map(|tk| format!("{} ({})", tk.version, tk.path))
                .collect();
            if !offenders.is_empty() {
                let expected = format!("one of {}", t.versions.join(", "));
                self.drift(
                    rules::TOOLKIT_VERSION,
                    &expected,
                    &offenders.join(", "),
                    format!(
                        "host toolkit {} is not allowed ({expected}): install an allowed toolkit and remove the others",
                        offenders.join(", ")
                    ),
                );
            }
        }
        if t.not_newer_than_driver {
            if !self.ready(
                rules::TOOLKIT_NEWER_THAN_DRIVER,
                &[
                    probes::TOOLKITS,
                    probes::KERNEL_MODULE,
                    probes::CUDA_CEILING,
                ],
            ) || toolkits.is_empty()
            {
                return;
            }
            // Without a driver nothing can run, which driver.present (or the
            // node's other rules) report; there is no ceiling to compare.
            let DriverState::Loaded(v) = driver else {
                return;
            };
            let Some(ceiling) = self.ceiling(v) else {
                self.unknown_ceiling(rules::TOOLKIT_NEWER_THAN_DRIVER, v, "the host toolkits");
                return;
            };
            let mut newer = Vec::new();
            let mut unreadable = Vec::new();
            let mut fix_driver: Option<DriverVersion> = None;
            for tk in toolkits {
                match ToolkitVersion::parse(&tk.version).map(|t| t.cuda()) {
                    Ok(cuda) if cuda > ceiling => {
                        newer.push(format!("{} ({})", tk.version, tk.path));
                        if let Some(min) = self.compat.min_driver_for_toolkit(cuda)
                            && fix_driver.as_ref().is_none_or(|f| &min > f)
                        {
                            fix_driver = Some(min);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => unreadable.push(format!("{:?} ({})", tk.version, tk.path)),
                }
            }
            if !newer.is_empty() {
                let fix = match fix_driver {
                    Some(d) => format!("upgrade the driver to {d} or newer, or remove the toolkit"),
                    None => "upgrade the driver, or remove the toolkit".to_string(),
                };
                self.drift(
                    rules::TOOLKIT_NEWER_THAN_DRIVER,
                    &format!("toolkits up to CUDA {ceiling}"),
                    &newer.join(", "),
                    format!(
                        "host toolkit {} is newer than driver {v} supports (CUDA {ceiling}), so programs built with it fail with \"CUDA driver version is insufficient\": {fix}",
                        newer.join(", ")
                    ),
                );
            } else if !unreadable.is_empty() {
                self.unknown(
                    rules::TOOLKIT_NEWER_THAN_DRIVER,
                    None,
                    Some(&unreadable.join(", ")),
                    format!(
                        "the version of host toolkit {} cannot be read: look at its version.json",
                        unreadable.join(", ")
                    ),
                );
            }
        }
    }

    // -- Container Toolkit -----------------------------------------------------

    fn container_toolkit_rules(&mut self, ctk: &ContainerToolkitRequirements) {
        let observed = &self.obs.container_toolkit;
        if self.ready(
            rules::CONTAINER_TOOLKIT_PRESENT,
            &[probes::CONTAINER_TOOLKIT],
        ) {
            if !observed.installed {
                self.drift(
                    rules::CONTAINER_TOOLKIT_PRESENT,
                    "the NVIDIA Container Toolkit installed",
                    "not installed",
                    "the NVIDIA Container Toolkit is not installed: install nvidia-container-toolkit and run `nvidia-ctk runtime configure`".to_string(),
                );
            } else if let Some(min) = ctk
                .min_version
                .as_deref()
                .and_then(|m| ToolkitVersion::parse(m).ok())
                && self.ready(
                    rules::CONTAINER_TOOLKIT_MIN_VERSION,
                    &[probes::CONTAINER_TOOLKIT],
                )
            {
                match observed.version.as_deref().map(|v| (v, ToolkitVersion::parse(v))) {
                    Some((_, Ok(have))) if have >= min => {}
                    Some((text, Ok(_))) => self.drift(
                        rules::CONTAINER_TOOLKIT_MIN_VERSION,
                        &format!("{min} or newer"),
                        text,
                        format!(
                            "NVIDIA Container Toolkit {text} is older than the minimum {min}: upgrade the nvidia-container-toolkit packages"
                        ),
                    ),
                    Some((text, Err(e))) => self.unknown(
                        rules::CONTAINER_TOOLKIT_MIN_VERSION,
                        Some(&format!("{min} or newer")),
                        Some(text),
                        format!("the Container Toolkit version cannot be compared ({e}): look at `nvidia-ctk --version` on the node"),
                    ),
                    None => self.unknown(
                        rules::CONTAINER_TOOLKIT_MIN_VERSION,
                        Some(&format!("{min} or newer")),
                        Some("unknown"),
                        "the Container Toolkit is installed but its version cannot be read: look at `nvidia-ctk --version` on the node".to_string(),
                    ),
                }
            }
        }
        let wants_runtime_rules =
            ctk.runtime.is_some() || ctk.require_default_runtime || ctk.require_cdi;
        if !wants_runtime_rules {
            return;
        }
        let runtimes: &[RuntimeObserved] = &self.obs.runtimes;
        let candidates: Vec<&RuntimeObserved> = match ctk.runtime {
            None | Some(RuntimeRequirement::Any) => runtimes.iter().collect(),
            Some(want) => runtimes.iter().filter(|r| runtime_is(r, want)).collect(),
        };
        let engine = match ctk.runtime {
            None | Some(RuntimeRequirement::Any) => "any container engine".to_string(),
            Some(want) => runtime_name(want).to_string(),
        };
        if let Some(want) = ctk.runtime
            && self.ready(rules::CONTAINER_TOOLKIT_RUNTIME, &[probes::RUNTIMES])
        {
            if candidates.is_empty() {
                let found: Vec<&str> = runtimes.iter().map(|r| r.name.as_str()).collect();
                self.drift(
                    rules::CONTAINER_TOOLKIT_RUNTIME,
                    &format!("{engine} with the nvidia handler"),
                    &if found.is_empty() { "no engine found".to_string() } else { found.join(", ") },
                    if want == RuntimeRequirement::Any {
                        "no container engine configuration (containerd, CRI-O, Docker) was found on the node: install one, or check the agent's host mounts".to_string()
                    } else {
                        format!("{engine} was not found on the node (found: {}): install it, or change containerToolkit.runtime", if found.is_empty() { "none".to_string() } else { found.join(", ") })
                    },
                );
            } else if !candidates.iter().any(|r| r.nvidia_handler) {
                let names: Vec<&str> = candidates.iter().map(|r| r.name.as_str()).collect();
                let target = if names.len() == 1 {
                    format!(" --runtime={}", names.join(""))
                } else {
                    String::new()
                };
                self.drift(
                    rules::CONTAINER_TOOLKIT_RUNTIME,
                    &format!("{engine} with the nvidia handler"),
                    &format!("no nvidia handler in {}", names.join(", ")),
                    format!(
                        "{} has no nvidia runtime handler: run `nvidia-ctk runtime configure{target}` and restart the engine",
                        names.join(", ")
                    ),
                );
            }
        }
        if candidates.is_empty() {
            return;
        }
        if ctk.require_default_runtime
            && self.ready(
                rules::CONTAINER_TOOLKIT_DEFAULT_RUNTIME,
                &[probes::RUNTIMES],
            )
            && !candidates
                .iter()
                .any(|r| r.default_runtime.as_deref() == Some("nvidia"))
        {
            let defaults: Vec<String> = candidates
                .iter()
                .map(|r| {
                    format!(
                        "{} default {}",
                        r.name.as_str(),
                        r.default_runtime.as_deref().unwrap_or("unset")
                    )
                })
                .collect();
            self.drift(
                rules::CONTAINER_TOOLKIT_DEFAULT_RUNTIME,
                "nvidia as the default runtime",
                &defaults.join(", "),
                format!(
                    "the nvidia handler is not the default runtime ({}): run `nvidia-ctk runtime configure --set-as-default` for the engine and restart it",
                    defaults.join(", ")
                ),
            );
        }
        if ctk.require_cdi
            && self.ready(rules::CONTAINER_TOOLKIT_CDI, &[probes::RUNTIMES])
            && !candidates.iter().any(|r| r.cdi_enabled)
        {
            let names: Vec<&str> = candidates.iter().map(|r| r.name.as_str()).collect();
            self.drift(
                rules::CONTAINER_TOOLKIT_CDI,
                "CDI enabled in the engine",
                &format!("CDI disabled in {}", names.join(", ")),
                format!(
                    "CDI is not enabled in {}: run `nvidia-ctk runtime configure --cdi.enabled` for the engine and restart it",
                    names.join(", ")
                ),
            );
        }
    }

    // -- CDI ---------------------------------------------------------------------

    fn cdi_rules(&mut self, cdi: &CdiRequirements, driver: &DriverState) {
        let specs = &self.obs.cdi.specs;
        if cdi.required
            && self.ready(rules::CDI_REQUIRED, &[probes::CDI])
            && !specs
                .iter()
                .any(|s| s.kind.as_deref() == Some(NVIDIA_CDI_KIND))
        {
            self.drift(
                rules::CDI_REQUIRED,
                &format!("a CDI spec for {NVIDIA_CDI_KIND}"),
                "none",
                format!(
                    "no CDI spec for {NVIDIA_CDI_KIND} is in /etc/cdi or /var/run/cdi: run `nvidia-ctk cdi generate --output=/var/run/cdi/nvidia.yaml` (or enable nvidia-cdi-refresh)"
                ),
            );
        }
        if !cdi.require_fresh || !self.ready(rules::CDI_STALE, &[probes::CDI]) {
            return;
        }
        // The agent's own judgement, cross-checked against the loaded driver
        // so a spec is caught even by an agent that missed it.
        let loaded = match driver {
            DriverState::Loaded(v) => Some(v),
            _ => None,
        };
        let mut stale = Vec::new();
        for spec in specs {
            let mut problems = spec.problems.clone();
            if let Some(v) = loaded {
                for referenced in &spec.driver_versions {
                    if DriverVersion::parse(referenced).is_ok_and(|r| &r != v) {
                        let p = format!("references driver {referenced}, the loaded driver is {v}");
                        if !problems.contains(&p) {
                            problems.push(p);
                        }
                    }
                }
            }
            if spec.stale || problems.len() > spec.problems.len() {
                if problems.is_empty() {
                    problems.push("marked stale by the agent".to_string());
                }
                stale.push((spec.path.clone(), problems));
            }
        }
        if stale.is_empty() {
            return;
        }
        let paths: Vec<&str> = stale.iter().map(|(p, _)| p.as_str()).collect();
        let detail: Vec<String> = stale
            .iter()
            .map(|(path, problems)| format!("{path}: {}", problems.join(", ")))
            .collect();
        self.drift(
            rules::CDI_STALE,
            "CDI specs that match the host",
            &format!("stale: {}", paths.join(", ")),
            format!(
                "CDI spec {} no longer matches the host ({}): regenerate it with `nvidia-ctk cdi generate --output=<the same path>`; containers using it fail to start",
                paths.join(", "),
                detail.join("; ")
            ),
        );
    }

    // -- kernel, OS, Secure Boot, Fabric Manager -------------------------------------

    fn host_rules(&mut self, req: &Requirements) {
        if let Some(kernel) = &req.kernel
            && !kernel.versions.is_empty()
            && self.ready(rules::KERNEL_VERSION, &[probes::KERNEL])
        {
            let expected = format!("one of {}", kernel.versions.join(", "));
            match self.obs.kernel.release.clone() {
                None => self.unknown(
                    rules::KERNEL_VERSION,
                    Some(&expected),
                    Some("unknown"),
                    "the kernel release cannot be read: look at /proc/sys/kernel/osrelease on the node".to_string(),
                ),
                Some(release) if !kernel.versions.iter().any(|g| glob_matches(g, &release)) => {
                    self.drift(
                        rules::KERNEL_VERSION,
                        &expected,
                        &release,
                        format!("kernel {release} is not allowed ({expected}): boot an allowed kernel"),
                    );
                }
                Some(_) => {}
            }
        }
        if let Some(os) = &req.os
            && (!os.ids.is_empty() || !os.versions.is_empty())
            && self.ready(rules::OS_VERSION, &[probes::OS])
        {
            self.os_version(&os.ids, &os.versions);
        }
        if let Some(want) = req.secure_boot
            && want != SecureBootRequirement::Any
            && self.ready(rules::SECURE_BOOT, &[probes::KERNEL])
        {
            let have = self.obs.kernel.secure_boot;
            let shown = match have {
                Some(true) => "on",
                Some(false) => "off",
                None => "not UEFI or unreadable",
            };
            match (want, have) {
                (SecureBootRequirement::Required, Some(true)) => {}
                (SecureBootRequirement::Required, _) => self.drift(
                    rules::SECURE_BOOT,
                    "on",
                    shown,
                    format!(
                        "Secure Boot is {shown} but the policy requires it: enable it in the UEFI firmware and enroll the key the NVIDIA modules are signed with (MOK)"
                    ),
                ),
                (SecureBootRequirement::Disabled, Some(true)) => self.drift(
                    rules::SECURE_BOOT,
                    "off",
                    shown,
                    "Secure Boot is on but the policy requires it off: disable it in the UEFI firmware".to_string(),
                ),
                _ => {}
            }
        }
    }

    fn os_version(&mut self, ids: &[String], versions: &[String]) {
        let id = self.obs.os.id.clone();
        let version = self.obs.os.version_id.clone();
        let mut wanted = Vec::new();
        if !ids.is_empty() {
            wanted.push(format!("id {}", ids.join(" or ")));
        }
        if !versions.is_empty() {
            wanted.push(format!("VERSION_ID {}", versions.join(" or ")));
        }
        let expected = wanted.join(", ");
        let observed = format!(
            "{} {}",
            id.as_deref().unwrap_or("unknown"),
            version.as_deref().unwrap_or("unknown")
        );
        let id_ok = match (&id, ids.is_empty()) {
            (_, true) => Some(true),
            (None, false) => None,
            (Some(id), false) => Some(ids.iter().any(|w| w.eq_ignore_ascii_case(id))),
        };
        let version_ok = match (&version, versions.is_empty()) {
            (_, true) => Some(true),
            (None, false) => None,
            (Some(v), false) => Some(versions.iter().any(|p| {
                VersionPattern::parse(p, PartMatch::Exact)
                    .is_some_and(|p| p.matches(v, PartMatch::Exact))
            })),
        };
        match (id_ok, version_ok) {
            (Some(false), _) | (_, Some(false)) => self.drift(
                rules::OS_VERSION,
                &expected,
                &observed,
                format!("the OS is {observed}, which is not allowed ({expected}): reinstall or upgrade the node's OS"),
            ),
            (None, _) | (_, None) => self.unknown(
                rules::OS_VERSION,
                Some(&expected),
                Some(&observed),
                "the OS cannot be told: look at /etc/os-release on the node".to_string(),
            ),
            (Some(true), Some(true)) => {}
        }
    }

    fn fabric_manager(&mut self, want: FabricManagerRequirement, driver: &DriverState) {
        let fm = &self.obs.fabric_manager;
        let needed = match want {
            FabricManagerRequirement::Ignore => false,
            FabricManagerRequirement::Auto => fm.required,
            FabricManagerRequirement::Required => true,
        };
        if !needed
            || !self.ready(
                rules::FABRIC_MANAGER,
                &[probes::FABRIC_MANAGER, probes::KERNEL_MODULE],
            )
        {
            return;
        }
        let why = if fm.required {
            "NVSwitches are present"
        } else {
            "the policy requires it"
        };
        let loaded = match driver {
            DriverState::Loaded(v) => Some(v),
            _ => None,
        };
        let packages = match loaded {
            Some(v) => {
                let names = self.compat.fabric_manager_packages(v.branch());
                if names.is_empty() {
                    format!("Fabric Manager for branch {}", v.branch())
                } else {
                    names.join(" or ")
                }
            }
            None => "Fabric Manager at the driver's version".to_string(),
        };
        let expected = match loaded {
            Some(v) => format!("Fabric Manager {v}"),
            None => "Fabric Manager at the driver's version".to_string(),
        };
        if !fm.installed {
            self.drift(
                rules::FABRIC_MANAGER,
                &expected,
                "not installed",
                format!(
                    "{why} but Fabric Manager is not installed, so CUDA cannot use the GPUs: install {packages} and enable nvidia-fabricmanager.service"
                ),
            );
            return;
        }
        let computed = match (loaded, fm.version.as_deref().map(DriverVersion::parse)) {
            (Some(v), Some(Ok(f))) => Some(&f == v),
            _ => None,
        };
        match computed.or(fm.matches_driver) {
            Some(true) => {}
            Some(false) => {
                let have = fm.version.clone().unwrap_or_else(|| "unknown".to_string());
                self.drift(
                    rules::FABRIC_MANAGER,
                    &expected,
                    &have,
                    format!(
                        "Fabric Manager {have} does not match the loaded driver{}: it refuses to start; install {packages} at the driver's exact version",
                        loaded.map(|v| format!(" {v}")).unwrap_or_default()
                    ),
                );
            }
            None => self.unknown(
                rules::FABRIC_MANAGER,
                Some(&expected),
                fm.version.as_deref(),
                "cannot tell whether Fabric Manager's version matches the driver's: look at `nv-fabricmanager --version` and /proc/driver/nvidia/version on the node".to_string(),
            ),
        }
    }

    fn uniformity(&mut self, req: &Requirements, fleet: &FleetView) {
        let window_open = req
            .upgrade_window
            .as_ref()
            .filter(|w| self.now < w.until.0)
            .map(|w| w.driver_versions.clone());
        let mut keys = req.uniformity.clone();
        keys.sort();
        keys.dedup();
        for key in keys {
            if !self.ready(rules::UNIFORMITY, &[uniformity_probe(key)]) {
                continue;
            }
            let Some(value) = uniformity_value(key, self.obs) else {
                continue;
            };
            let Reference::Majority {
                value: reference,
                count,
                total,
            } = fleet.reference(key)
            else {
                continue;
            };
            if value == reference {
                continue;
            }
            // A rollout through an open upgrade window is not a uniformity
            // failure: neither for nodes already on the new version nor for
            // those still on the old one once the new one is the majority.
            if key == UniformityKey::DriverVersion
                && let Some(window) = &window_open
            {
                let in_window = |v: &str| {
                    window.iter().any(|p| {
                        VersionPattern::parse(p, PartMatch::Numeric)
                            .is_some_and(|p| p.matches(v, PartMatch::Numeric))
                    })
                };
                if in_window(&value) || in_window(reference) {
                    continue;
                }
            }
            self.drift(
                rules::UNIFORMITY,
                &format!("{} {reference}", key.as_str()),
                &format!("{} {value}", key.as_str()),
                format!(
                    "{} is {value} here but {reference} on most of the pool ({count} of {total} nodes): bring this node to {reference}",
                    key.as_str()
                ),
            );
        }
    }
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

fn runtime_is(r: &RuntimeObserved, want: RuntimeRequirement) -> bool {
    matches!(
        (want, r.name),
        (RuntimeRequirement::Any, _)
            | (
                RuntimeRequirement::Containerd,
                plumbline_api::RuntimeName::Containerd
            )
            | (
                RuntimeRequirement::Docker,
                plumbline_api::RuntimeName::Docker
            )
            | (RuntimeRequirement::Crio, plumbline_api::RuntimeName::Crio)
    )
}

fn runtime_name(want: RuntimeRequirement) -> &'static str {
    match want {
        RuntimeRequirement::Containerd => "containerd",
        RuntimeRequirement::Docker => "docker",
        RuntimeRequirement::Crio => "crio",
        RuntimeRequirement::Any => "any container engine",
    }
}
