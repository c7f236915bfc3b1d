//! What `plumbline sim` prints: the one-line progress while converging,
//! the summary, and how to use the running simulation.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plumbline_api::VerdictState;
use plumbline_sim::fleet::{GeneratedNode, ViolationKind};

use super::cluster::ClusterView;
use super::scenario::{AppliedPolicy, Expected};

/// The progress line: how far the fleet is from converged.
pub fn progress_line(view: &ClusterView, total: usize, seconds: f64, extra: &str) -> String {
    format!(
        "[{seconds:6.1}s] published {}/{total}  judged {}/{total}  compliant {}  drifting {}  unknown {}  tainted {}  cordoned {}  held back {}{extra}",
        view.published(),
        view.judged(),
        view.count_verdict(VerdictState::Compliant),
        view.count_verdict(VerdictState::Drifting),
        view.count_verdict(VerdictState::Unknown),
        view.tainted(),
        view.cordoned(),
        view.held_back(),
    )
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn names(list: &[String], max: usize) -> String {
    let mut out = list
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > max {
        let _ = write!(out, " and {} more", list.len() - max);
    }
    out
}

/// One simulated node as the summary needs it: its spec and what the
/// scenario expected of it.
#[derive(Debug)]
pub struct SummaryNode {
    pub node: GeneratedNode,
    pub expected: Expected,
}

/// The summary, readable at a glance.
pub fn render(
    headline: &str,
    view: &ClusterView,
    nodes: &[SummaryNode],
    policies: &[AppliedPolicy],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{headline}");
    let total = view.nodes.len().max(1);

    let _ = writeln!(out, "\nNodes by verdict");
    let not_yet = view.nodes.values().filter(|n| n.verdict.is_none()).count();
    for state in [
        VerdictState::Compliant,
        VerdictState::Drifting,
        VerdictState::Unknown,
        VerdictState::Unmanaged,
    ] {
        let n = view.count_verdict(state);
        let bar = "#".repeat((n * 40).div_ceil(total).min(40));
        let line = format!("  {:<10} {n:>6}  {bar}", state.as_str());
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if not_yet > 0 {
        let _ = writeln!(out, "  {:<10} {not_yet:>6}", "no verdict");
    }

    let _ = writeln!(out, "\nPolicies");
    let width = policies
        .iter()
        .map(|p| p.name().len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        out,
        "  {:<width$}  {:>5}  {:>9}  {:>8}  {:>7}  {:>11}  {:>9}",
        "name", "nodes", "compliant", "drifting", "unknown", "unavailable", "held back"
    );
    for p in policies {
        let Some(s) = view.policy(p.name()) else {
            continue;
        };
        let budget = match s.budget {
            Some((used, max))
                if plumbline_policy::needs_budget(
                    &p.policy.spec.actions.on_drift,
                    p.policy.spec.actions.taint_effect,
                ) =>
            {
                format!("{used} of {max}")
            }
            _ => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {:>5}  {:>9}  {:>8}  {:>7}  {:>11}  {:>9}",
            s.name, s.selected, s.compliant, s.drifting, s.unknown, budget, s.held_back
        );
    }

    // Findings: how many nodes per rule, and one message as an example.
    let mut findings: BTreeMap<&str, (usize, &str, &str)> = BTreeMap::new();
    for (name, node) in &view.nodes {
        let mut seen = std::collections::BTreeSet::new();
        for (rule, message) in &node.findings {
            if seen.insert(rule.as_str()) {
                let entry =
                    findings
                        .entry(rule.as_str())
                        .or_insert((0, name.as_str(), message.as_str()));
                entry.0 += 1;
            }
        }
    }
    let _ = writeln!(out, "\nTop findings");
    if findings.is_empty() {
        let _ = writeln!(out, "  none: every node satisfies its policy");
    }
    let mut findings: Vec<_> = findings.into_iter().collect();
    findings.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    let rule_width = findings.iter().map(|(r, _)| r.len()).max().unwrap_or(4);
    for (rule, (n, node, message)) in findings.iter().take(8) {
        let _ = writeln!(
            out,
            "  {rule:<rule_width$} {n:>5}  {}",
            shorten(&format!("{node}: {message}"), 110)
        );
    }

    let _ = writeln!(out, "\nTainted or cordoned by Plumbline");
    let disrupted: Vec<(&String, String)> = view
        .nodes
        .iter()
        .filter_map(|(name, n)| {
            let policy = n.policy.as_deref().unwrap_or("?");
            match (&n.taint, n.cordoned) {
                (_, true) => Some((name, format!("cordoned by {policy}"))),
                (Some(effect), false) => Some((name, format!("tainted {effect} by {policy}"))),
                (None, false) => None,
            }
        })
        .collect();
    if disrupted.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for (name, what) in disrupted.iter().take(10) {
        let _ = writeln!(out, "  {name:<22} {what}");
    }
    if disrupted.len() > 10 {
        let _ = writeln!(out, "  … and {} more", disrupted.len() - 10);
    }

    let _ = writeln!(out, "\nHeld back by the disruption budget");
    let held: Vec<_> = view.policies.iter().filter(|p| p.held_back > 0).collect();
    if held.is_empty() {
        let _ = writeln!(out, "  nothing");
    }
    for p in held {
        let (used, max) = p.budget.unwrap_or((0, 0));
        let _ = writeln!(
            out,
            "  {}: {} held back ({used} of at most {max} unavailable): {}",
            p.name,
            plural(p.held_back as usize, "node"),
            names(&p.held_back_nodes, 6)
        );
    }

    // What the generator built in, and whether the governing policy looks.
    let mut built: BTreeMap<ViolationKind, (usize, usize, String)> = BTreeMap::new();
    for n in nodes {
        let Some(policy) = n.expected.policy.as_deref() else {
            continue;
        };
        for v in &n.node.violations {
            let entry = built.entry(v.kind()).or_insert((0, 0, String::new()));
            entry.0 += 1;
            if n.expected.rules.contains(v.rule()) {
                entry.1 += 1;
            } else if entry.2.is_empty() {
                entry.2 = format!("{} under {policy}", n.node.name);
            }
        }
    }
    if !built.is_empty() {
        let _ = writeln!(out, "\nProblems built into the hosts");
        let _ = writeln!(
            out,
            "  {:<26} {:>5}  {:>6}  not checked by the governing policy",
            "problem", "hosts", "caught"
        );
        for (kind, (n, caught, example)) in built {
            let _ = writeln!(
                out,
                "  {:<26} {n:>5}  {caught:>6}  {}",
                kind.as_str(),
                if example.is_empty() { "-" } else { &example }
            );
        }
    }
    out
}

/// How to use the running simulation.
pub fn usage(
    kubeconfig: &Path,
    hosts: &Path,
    temporary: bool,
    example: Option<&SummaryNode>,
) -> String {
    let mut out = String::new();
    let k = kubeconfig.display();
    let _ = writeln!(
        out,
        "\nThe simulated cluster keeps running until Ctrl-C. In another terminal:"
    );
    let _ = writeln!(out, "  export KUBECONFIG={k}");
    let _ = writeln!(
        out,
        "  kubectl get ngb                # every node's stack and verdict (-o wide adds policy and GPUs)"
    );
    let _ = writeln!(
        out,
        "  kubectl get gfp                # policies: selected, compliant, drifting, held back"
    );
    let node = example.map_or("<node>", |e| e.node.name.as_str());
    let _ = writeln!(
        out,
        "  kubectl describe node {node}   # labels, the GpuStackCompliant condition, taints, events"
    );
    let _ = writeln!(
        out,
        "\nEvery node's files are under {}/<node>/ (proc, sys, etc, usr, run, var){}; edit them and",
        hosts.display(),
        if temporary { ", removed on exit" } else { "" }
    );
    let _ = writeln!(out, "the node's agent re-probes within seconds.");
    if let Some(e) = example {
        let root = hosts.join(&e.node.name);
        let loaded = &e.node.host.module;
        let older = plumbline_sim::fleet::previous_build(loaded);
        let _ = writeln!(
            out,
            "For example, make {} look like it booted an older module (a pending reboot):",
            e.node.name
        );
        let _ = writeln!(
            out,
            "  sed -i 's/{loaded}/{older}/' {}/proc/driver/nvidia/version {}/sys/module/nvidia/version",
            root.display(),
            root.display()
        );
        let _ = writeln!(
            out,
            "and watch `kubectl get ngb {} -w` turn Drifting; the reverse sed puts it back.",
            e.node.name
        );
    }
    let _ = writeln!(
        out,
        "Or let the simulator break and repair random hosts: plumbline sim --drift-every 20s"
    );
    out
}
