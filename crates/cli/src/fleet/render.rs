//! [`FleetView`] for people (an aligned table) and for programs (JSON).

use anyhow::Context;

use super::view::{FleetView, Group, VerdictCounts};

/// Node names shown after a flagged value; the JSON document has them all.
pub const MAX_NAMED: usize = 8;

/// The `--output json` document, pretty-printed.
pub fn json(view: &FleetView) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(view).context("rendering JSON")?;
    text.push('\n');
    Ok(text)
}

struct Paint {
    colour: bool,
}

impl Paint {
    fn flagged(&self, s: &str) -> String {
        if self.colour {
            format!("\x1b[31m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    fn heading(&self, s: &str) -> String {
        if self.colour {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// `a, b, c +5 more`.
fn names(nodes: &[String]) -> String {
    let shown: Vec<&str> = nodes.iter().take(MAX_NAMED).map(String::as_str).collect();
    let mut text = shown.join(", ");
    if nodes.len() > MAX_NAMED {
        text.push_str(&format!(" +{} more", nodes.len() - MAX_NAMED));
    }
    text
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn verdicts(counts: &VerdictCounts) -> String {
    counts
        .nonzero()
        .iter()
        .map(|(name, n)| format!("{n} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `42m`, `2h10m`, `3d4h`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// The one-line header: nodes by verdict, then what needs a look.
pub fn header(view: &FleetView) -> String {
    let t = &view.totals;
    let mut parts = vec![format!(
        "{} with a baseline",
        plural(t.nodes, "node", "nodes")
    )];
    let by_verdict = verdicts(&t.verdicts);
    if !by_verdict.is_empty() {
        parts[0].push_str(&format!(" ({by_verdict})"));
    }
    if t.stale_heartbeats > 0 {
        parts.push(plural(
            t.stale_heartbeats,
            "stale heartbeat",
            "stale heartbeats",
        ));
    }
    if t.without_baseline > 0 {
        parts.push(format!(
            "{} without a baseline",
            plural(t.without_baseline, "node", "nodes")
        ));
    }
    if t.baselines_without_node > 0 {
        parts.push(format!(
            "{} without a Node",
            plural(t.baselines_without_node, "baseline", "baselines")
        ));
    }
    if t.not_probed > 0 {
        parts.push(format!(
            "{} not probed yet",
            plural(t.not_probed, "node", "nodes")
        ));
    }
    if t.other_nodes > 0 {
        parts.push(format!(
            "{} outside every policy",
            plural(t.other_nodes, "other node", "other nodes")
        ));
    }
    let scope = match &view.policy_filter {
        Some(policy) => format!("fleet (policy {policy})"),
        None => "fleet".to_string(),
    };
    format!("{scope}: {}", parts.join(" · "))
}

/// One table row: flag, field label (first row of a field only), value,
/// node count, the nodes named.
struct Row {
    flagged: bool,
    label: String,
    value: String,
    count: usize,
    named: String,
}

fn rows(group: &Group) -> Vec<Row> {
    let mut out = Vec::new();
    for field in &group.fields {
        for (i, v) in field.values.iter().enumerate() {
            out.push(Row {
                flagged: v.flagged(),
                label: if i == 0 {
                    field.label.clone()
                } else {
                    String::new()
                },
                value: v.value.clone(),
                count: v.count,
                named: if v.flagged() {
                    names(&v.nodes)
                } else {
                    String::new()
                },
            });
        }
    }
    for (i, f) in group.findings.iter().enumerate() {
        out.push(Row {
            flagged: true,
            label: if i == 0 {
                "findings".to_string()
            } else {
                String::new()
            },
            value: f.rule.clone(),
            count: f.count,
            named: names(&f.nodes),
        });
    }
    out
}

fn width(text: &str) -> usize {
    text.chars().count()
}

fn pad(text: &str, to: usize) -> String {
    let mut s = text.to_string();
    for _ in width(text)..to {
        s.push(' ');
    }
    s
}

/// The whole table. `colour` adds ANSI red to flagged rows and bold to
/// headings; the text is the same either way.
pub fn table(view: &FleetView, colour: bool) -> String {
    let paint = Paint { colour };
    let mut out = String::new();
    out.push_str(&paint.heading(&header(view)));
    out.push('\n');

    let a = &view.attention;
    let mut notes: Vec<(&str, String)> = Vec::new();
    if !a.stale_heartbeats.is_empty() {
        let shown: Vec<String> = a
            .stale_heartbeats
            .iter()
            .map(|s| match s.age_seconds {
                Some(secs) => format!("{} ({} ago > {})", s.node, age(secs), s.stale_after),
                None => format!("{} (never)", s.node),
            })
            .collect();
        notes.push(("stale heartbeat", names(&shown)));
    }
    if !a.without_baseline.is_empty() {
        let shown: Vec<String> = a
            .without_baseline
            .iter()
            .map(|m| format!("{} ({})", m.node, m.policy))
            .collect();
        notes.push(("no baseline", names(&shown)));
    }
    if !a.baselines_without_node.is_empty() {
        notes.push(("Node gone", names(&a.baselines_without_node)));
    }
    if !a.not_probed.is_empty() {
        notes.push(("not probed yet", names(&a.not_probed)));
    }
    if !notes.is_empty() {
        out.push('\n');
        let w = notes.iter().map(|(l, _)| width(l)).max().unwrap_or(0);
        for (label, text) in &notes {
            out.push_str(&paint.flagged(&format!("! {}  {text}", pad(label, w))));
            out.push('\n');
        }
    }

    if view.groups.is_empty() {
        out.push_str(
            "\nno NodeGpuBaselines to show: the Plumbline agent writes one per GPU node; \
             check that its DaemonSet runs (and, with --policy or --selector, that they match)\n",
        );
        return out;
    }

    let all: Vec<(&Group, Vec<Row>)> = view.groups.iter().map(|g| (g, rows(g))).collect();
    let label_w = all
        .iter()
        .flat_map(|(_, rs)| rs.iter().map(|r| width(&r.label)))
        .chain([width("FIELD"), width("findings")])
        .max()
        .unwrap_or(0);
    let value_w = all
        .iter()
        .flat_map(|(_, rs)| rs.iter().map(|r| width(&r.value)))
        .chain([width("VALUE")])
        .max()
        .unwrap_or(0);
    let count_w = all
        .iter()
        .flat_map(|(_, rs)| rs.iter().map(|r| r.count.to_string().len()))
        .chain([width("NODES")])
        .max()
        .unwrap_or(0);

    for (group, rs) in &all {
        out.push('\n');
        let name = match &group.policy {
            Some(p) => format!("policy {p}"),
            None => "no policy".to_string(),
        };
        let mut heading = format!("{name} · {}", plural(group.nodes, "node", "nodes"));
        let by_verdict = verdicts(&group.verdicts);
        if !by_verdict.is_empty() {
            heading.push_str(&format!(": {by_verdict}"));
        }
        heading.push_str(&format!(" · staleAfter {}", group.stale_after));
        out.push_str(&paint.heading(&heading));
        out.push('\n');
        out.push_str(&format!(
            "  {}  {}  {:>count_w$}  OUTLIERS\n",
            pad("FIELD", label_w),
            pad("VALUE", value_w),
            "NODES"
        ));
        if rs.is_empty() {
            out.push_str("  (no node of this policy has been probed yet)\n");
        }
        for r in rs {
            let line = format!(
                "{} {}  {}  {:>count_w$}  {}",
                if r.flagged { "!" } else { " " },
                pad(&r.label, label_w),
                pad(&r.value, value_w),
                r.count,
                r.named
            );
            let line = line.trim_end();
            if r.flagged {
                out.push_str(&paint.flagged(line));
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "\n! = differs from its policy's majority, or wrong in itself · * = default toolkit · \
         up to {MAX_NAMED} nodes named; --output json lists every node\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (5, "5s"),
            (60, "1m"),
            (42 * 60 + 10, "42m"),
            (3600, "1h"),
            (2 * 3600 + 10 * 60, "2h10m"),
            (86_400, "1d"),
            (3 * 86_400 + 4 * 3600 + 59, "3d4h"),
            (-3, "0s"),
        ];
        for (secs, want) in cases {
            assert_eq!(age(secs), want, "{secs}s");
        }
    }

    #[test]
    fn long_name_lists_are_cut_with_a_count() {
        let cases: [(usize, &str); 3] = [
            (1, "n1"),
            (MAX_NAMED, "n1, n2, n3, n4, n5, n6, n7, n8"),
            (MAX_NAMED + 4, "n1, n2, n3, n4, n5, n6, n7, n8 +4 more"),
        ];
        for (n, want) in cases {
            let nodes: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
            assert_eq!(names(&nodes), want, "{n} names");
        }
    }
}
