//! `plumbline sim` as a user runs it: the built binary, every scenario at a
//! small size with `--exit-when-converged`, and a running simulation read
//! with the real `kubectl` and changed live through a host file.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_plumbline");

/// Runs `plumbline sim ARGS --exit-when-converged` to the end.
fn sim_to_convergence(args: &[&str]) -> (Output, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let out = Command::new(BIN)
        .arg("sim")
        .args(args)
        .args(["--exit-when-converged", "--timeout", "100s", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// The count on a `Nodes by verdict` line of the summary.
fn verdict_count(summary: &str, state: &str) -> usize {
    summary
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(state))
                .then(|| words.next().and_then(|n| n.parse().ok()))
                .flatten()
        })
        .unwrap_or_else(|| panic!("no {state} line in:\n{summary}"))
}

/// The columns of a policy's row in the summary's `Policies` table.
fn policy_row<'a>(summary: &'a str, name: &str) -> Vec<&'a str> {
    summary
        .lines()
        .skip_while(|l| *l != "Policies")
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_else(|| panic!("no row for {name} in:\n{summary}"))
}

fn assert_converged(out: &Output, stdout: &str, stderr: &str, scenario: &str) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status.code()
    );
    assert!(
        stdout.contains(&format!("Converged as the {scenario} scenario expects")),
        "{stdout}"
    );
    for section in [
        "Nodes by verdict",
        "Policies",
        "Top findings",
        "Tainted or cordoned by Plumbline",
        "Held back by the disruption budget",
    ] {
        assert!(stdout.contains(section), "no {section:?} in:\n{stdout}");
    }
    assert_eq!(verdict_count(stdout, "Unknown"), 0, "{stdout}");
}

#[test]
fn mixed_converges_with_drift_taints_cordons_and_budget_holds() {
    let (out, stdout, stderr) = sim_to_convergence(&["--nodes", "24", "--seed", "1"]);
    assert_converged(&out, &stdout, &stderr, "mixed");
    assert_eq!(
        verdict_count(&stdout, "Compliant") + verdict_count(&stdout, "Drifting"),
        24
    );
    assert!(verdict_count(&stdout, "Drifting") > 0, "{stdout}");
    // The H100 pool is tainted, the inference pool cordoned, one node each
    // (their budgets are 10% of six and 1), the rest held back.
    assert!(
        stdout.contains("tainted NoSchedule by h100-pin-580"),
        "{stdout}"
    );
    assert!(
        stdout.contains("cordoned by inference-cuda-12-8"),
        "{stdout}"
    );
    assert!(
        stdout.contains("h100-pin-580: 1 node held back (1 of at most 1 unavailable)"),
        "{stdout}"
    );
    let flavour = policy_row(&stdout, "module-flavour");
    assert_eq!(
        flavour[5], "-",
        "no budget for a label-only policy: {flavour:?}"
    );
    // What the generator built in is reported against what was caught.
    assert!(stdout.contains("pending-reboot"), "{stdout}");
}

#[test]
fn bad_policy_is_stopped_by_the_budget() {
    let (out, stdout, stderr) = sim_to_convergence(&["--scenario", "bad-policy", "--nodes", "30"]);
    assert_converged(&out, &stdout, &stderr, "bad-policy");
    // name nodes compliant drifting unknown <used> of <max> held
    let row = policy_row(&stdout, "pin-595-everywhere");
    let num = |i: usize| row[i].parse::<usize>().unwrap();
    let (nodes, drifting, used, max, held) = (num(1), num(3), num(5), num(7), num(8));
    assert_eq!(nodes, 30, "{row:?}");
    assert!(drifting > nodes / 2, "most of the fleet drifts: {row:?}");
    assert!(used <= max, "disrupted {used} > maxUnavailable {max}");
    assert!(held > 0, "the budget held nothing back: {row:?}");
    assert_eq!(used + held, drifting, "{row:?}");
    let cordoned = stdout.matches("cordoned by pin-595-everywhere").count();
    assert!(
        cordoned <= max && cordoned > 0,
        "{cordoned} cordoned, max {max}"
    );
}

#[test]
fn rolling_upgrade_drifts_and_clears_node_by_node() {
    let (out, stdout, stderr) =
        sim_to_convergence(&["--scenario", "rolling-upgrade", "--nodes", "6"]);
    assert_converged(&out, &stdout, &stderr, "rolling-upgrade");
    assert!(
        stdout.contains(
            "Rollout to 595.58.03: 6 nodes went through a pending reboot (Drifting) and back to Compliant."
        ),
        "{stdout}"
    );
    assert_eq!(verdict_count(&stdout, "Compliant"), 6, "{stdout}");
    assert!(stderr.contains("reboot pending"), "{stderr}");
    assert!(
        stderr.contains("rollout: every node runs 595.58.03"),
        "{stderr}"
    );
}

#[test]
fn scale_converges_and_a_timeout_says_why_not() {
    let (out, stdout, stderr) = sim_to_convergence(&["--scenario", "scale", "--nodes", "150"]);
    assert_converged(&out, &stdout, &stderr, "scale");
    assert!(stdout.contains("150 nodes"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "sim",
            "--nodes",
            "12",
            "--exit-when-converged",
            "--timeout",
            "1ms",
        ])
        .arg("--kubeconfig")
        .arg(dir.path().join("kubeconfig"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("Not converged as the mixed scenario expects after"),
        "{stdout}"
    );
    assert!(stdout.contains("  - "), "the reasons are listed: {stdout}");
}

/// `kubectl` on PATH, if installed.
fn kubectl() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
}

fn kubectl_out(bin: &Path, kubeconfig: &Path, home: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .arg(format!("--cache-dir={}", home.join("cache").display()))
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stops the simulation when the test ends, however it ends: SIGTERM
/// first, so that it removes its temporary host trees, then SIGKILL.
struct Running(Child);

impl Running {
    /// Sends SIGTERM and waits up to 30 s for the exit status.
    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.0.try_wait() {
            return Some(status);
        }
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.terminate().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn a_running_simulation_fills_every_kubectl_column_and_takes_live_edits() {
    let Some(kubectl) = kubectl() else {
        println!("SKIPPED: kubectl is not installed on this machine (not on PATH)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = Running(
        Command::new(BIN)
            .args(["sim", "--nodes", "12"])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--hosts-dir")
            .arg(dir.path().join("hosts"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !printed
        .iter()
        .any(|l: &String| l == "Serving until Ctrl-C.")
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => printed.push(line),
            Err(_) => panic!("no convergence within 90 s:\n{}", printed.join("\n")),
        }
    }
    let text = printed.join("\n");
    let shown = printed
        .iter()
        .find_map(|l| l.trim().strip_prefix("kubeconfig  "))
        .expect("the kubeconfig path is printed");
    assert_eq!(Path::new(shown), kubeconfig.canonicalize().unwrap());
    assert!(
        text.contains(&format!("export KUBECONFIG={shown}")),
        "{text}"
    );
    let home = dir.path();

    let table = kubectl_out(&kubectl, &kubeconfig, home, &["get", "ngb", "-o", "wide"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "DRIVER", "MODULE", "CUDA", "TOOLKIT", "CTK", "CDI", "VERDICT", "AGE",
            "POLICY", "GPUS"
        ]
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 12, "{table}");
    for row in rows {
        // GPUS ("8x H100 80GB HBM3") is the only column with spaces, and last.
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert!(cells.len() >= 11, "a column is empty: {row:?}");
        assert!(!cells.contains(&"<none>"), "a column is empty: {row:?}");
        assert!(
            ["Compliant", "Drifting"].contains(&cells[7]),
            "verdict {row:?}"
        );
    }

    // A live edit, exactly as the printed example says.
    let sed = printed
        .iter()
        .find_map(|l| l.trim().strip_prefix("sed -i 's/"))
        .expect("an example edit is printed");
    let (pattern, files) = sed.split_once("/' ").unwrap();
    let (from, to) = pattern.split_once('/').unwrap();
    let files: Vec<&str> = files.split_whitespace().collect();
    let node = Path::new(files[0])
        .strip_prefix(dir.path().join("hosts").canonicalize().unwrap())
        .unwrap()
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    let edit = |a: &str, b: &str| {
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            std::fs::write(f, text.replace(a, b)).unwrap();
        }
    };
    let verdict = || {
        kubectl_out(
            &kubectl,
            &kubeconfig,
            home,
            &[
                "get",
                "ngb",
                &node,
                "-o",
                "jsonpath={.status.verdict.state}",
            ],
        )
    };
    let wait_for = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = verdict();
            if now == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{node} stayed {now}, wanted {want}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert_eq!(verdict(), "Compliant");
    edit(from, to);
    wait_for("Drifting");
    edit(to, from);
    wait_for("Compliant");

    // SIGTERM stops it cleanly.
    let status = child.terminate().expect("plumbline sim stops on SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn drift_every_changes_hosts_and_the_changes_reach_the_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Running(
        Command::new(BIN)
            .args(["sim", "--nodes", "12", "--drift-every", "300ms"])
            .arg("--kubeconfig")
            .arg(dir.path().join("kubeconfig"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The fleet starts compliant at this size; drift must show up as
    // drifting nodes in the progress line, through files, agents and the
    // controller.
    let drifting = |line: &str| {
        line.split("drifting ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n > 0)
    };
    let mut drifts = Vec::new();
    let mut seen_drifting = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(seen_drifting && drifts.len() >= 3) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no drift seen within 60 s: {drifts:?}"));
        if line.starts_with("drift: ") {
            drifts.push(line);
        } else if line.starts_with('[') && drifting(&line) {
            seen_drifting = true;
        }
    }
    for d in &drifts {
        // "drift: <node>: <what was done> [<host files changed>]"
        assert!(d.contains(": ") && d.contains(" [/"), "{d}");
    }
}
