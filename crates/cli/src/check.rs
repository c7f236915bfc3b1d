//! `plumbline check`: probe a host, judge it against a policy, print both.
//!
//! [`probe`] gathers, [`judge`] evaluates (the built-in default policy unless
//! `--policy` names a file), the `render_*` functions print, and [`run`]
//! ties them together and turns the verdict into the exit code: 0 compliant,
//! 1 drifting, 2 usage or input error, 3 unknown.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use plumbline_api::{GpuFleetPolicy, Observed, ProbeResult, ProbeStatus, Verdict};
use plumbline_compat::CompatDb;
use plumbline_probe::{HostRoot, Options, probe_host};

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Directory the host's filesystem is mounted at.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub host_root: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Do not load NVML; read files only.
    #[arg(long)]
    pub no_nvml: bool,
    /// Compatibility data file to use instead of the embedded one.
    #[arg(long, value_name = "FILE")]
    pub compat_data: Option<PathBuf>,
    /// GpuFleetPolicy YAML to judge the host against (a single host is a
    /// pool of one). Default: the built-in sanity policy (docs/policy.md).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

/// The compatibility data the arguments ask for.
fn compat_data(args: &CheckArgs) -> anyhow::Result<std::borrow::Cow<'static, CompatDb>> {
    match &args.compat_data {
        Some(path) => {
            let loaded = CompatDb::load(path).with_context(|| {
                format!(
                    "loading --compat-data {} (check the file, or omit the flag to use the embedded data)",
                    path.display()
                )
            })?;
            Ok(std::borrow::Cow::Owned(loaded))
        }
        None => Ok(std::borrow::Cow::Borrowed(CompatDb::embedded())),
    }
}

/// The policy the arguments ask for: a file, or the built-in default.
pub fn policy(args: &CheckArgs) -> anyhow::Result<GpuFleetPolicy> {
    match &args.policy {
        None => Ok(plumbline_policy::default_policy()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --policy {}", path.display()))?;
            let source = path.display().to_string();
            plumbline_policy::parse_policy(&text, &source)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .context("the policy file is not a valid GpuFleetPolicy")
        }
    }
}

/// Judges what was probed against the policy, as of now.
pub fn judge(
    policy: &GpuFleetPolicy,
    observed: &Observed,
    probes: &[ProbeResult],
    compat: &CompatDb,
) -> Verdict {
    plumbline_policy::evaluate_host(policy, observed, probes, jiff::Timestamp::now(), compat)
}

/// Probes the host the arguments name.
pub fn probe(args: &CheckArgs, compat: &CompatDb) -> anyhow::Result<(Observed, Vec<ProbeResult>)> {
    let host = HostRoot::new(&args.host_root).with_context(|| {
        format!(
            "--host-root {} must be a directory holding the host's filesystem",
            args.host_root.display()
        )
    })?;
    let options = Options {
        nvml: !args.no_nvml,
        ..Options::with_compat(compat)
    };
    Ok(probe_host(&host, &options))
}

/// `{"observed": ..., "probes": [...], "verdict": ...}` as the API names
/// the fields.
pub fn document(
    observed: &Observed,
    probes: &[ProbeResult],
    verdict: &Verdict,
) -> serde_json::Value {
    serde_json::json!({ "observed": observed, "probes": probes, "verdict": verdict })
}

pub fn render_json(
    observed: &Observed,
    probes: &[ProbeResult],
    verdict: &Verdict,
) -> anyhow::Result<String> {
    let mut out = serde_json::to_string_pretty(&document(observed, probes, verdict))?;
    out.push('\n');
    Ok(out)
}

pub fn render_yaml(
    observed: &Observed,
    probes: &[ProbeResult],
    verdict: &Verdict,
) -> anyhow::Result<String> {
    serde_saphyr::to_string(&document(observed, probes, verdict)).context("rendering YAML")
}

/// The verdict for people: the state, the policy, and one line per finding
/// with what to do.
pub fn render_verdict(verdict: &Verdict, colour: bool) -> String {
    let style = Style { color: colour };
    let policy = verdict.policy.as_deref().unwrap_or("no policy");
    let head = format!("verdict: {} against {policy}", verdict.state.as_str());
    let mut out = String::from("\n");
    if verdict.findings.is_empty() {
        out.push_str(&head);
    } else {
        out.push_str(&style.bad(&head));
    }
    out.push('\n');
    for finding in &verdict.findings {
        out.push_str(&style.bad(&format!("! {}: {}", finding.rule, finding.message)));
        out.push('\n');
    }
    out
}

/// Colours and markers for the table.
struct Style {
    color: bool,
}

impl Style {
    fn bad(&self, s: &str) -> String {
        if self.color {
            format!("\x1b[31m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
}

fn status_of<'a>(probes: &'a [ProbeResult], name: &str) -> Option<&'a ProbeResult> {
    probes.iter().find(|p| p.name == name)
}

/// One line per layer, for people. `!` marks a problem.
pub fn render_table(observed: &Observed, probes: &[ProbeResult], color: bool) -> String {
    use plumbline_api::keys::probes as n;
    let style = Style { color };
    let mut rows: Vec<(&str, bool, String)> = Vec::new();
    let d = &observed.driver;

    let driver = if d.loaded {
        let mut s = format!(
            "{} ({} module)",
            d.version.as_deref().unwrap_or("?"),
            d.kernel_module.as_str()
        );
        if let Some(u) = &d.userspace_version {
            s.push_str(&format!(
                ", userspace {u} under {}",
                d.root.as_deref().unwrap_or("/")
            ));
        }
        if d.mismatch {
            s.push_str(" — kernel/userspace mismatch, reboot pending");
        }
        s
    } else {
        match &d.userspace_version {
            Some(u) => format!("no NVIDIA driver is loaded (userspace {u} is installed)"),
            None => "no NVIDIA driver is loaded".to_owned(),
        }
    };
    rows.push(("driver", d.mismatch || !d.loaded, driver));
    rows.push((
        "module",
        false,
        if d.loaded {
            format!("{} (/proc/driver/nvidia/version)", d.kernel_module.as_str())
        } else {
            "-".to_owned()
        },
    ));
    rows.push((
        "CUDA ceiling",
        d.loaded && d.cuda_ceiling.is_none(),
        d.cuda_ceiling.clone().unwrap_or_else(|| "-".to_owned()),
    ));
    let gpus = if observed.gpus.is_empty() {
        "none".to_owned()
    } else {
        let summary = plumbline_api::Summary::from_observed(observed);
        let arch: Vec<String> = observed
            .gpus
            .iter()
            .filter_map(|g| {
                g.architecture
                    .as_ref()
                    .map(|a| format!("{a} {}", g.compute_capability.as_deref().unwrap_or("?")))
            })
            .fold(Vec::new(), |mut acc, a| {
                if !acc.contains(&a) {
                    acc.push(a);
                }
                acc
            });
        format!(
            "{} ({})",
            summary.gpus.unwrap_or_default(),
            if arch.is_empty() {
                "unknown architecture".to_owned()
            } else {
                arch.join(", ")
            }
        )
    };
    rows.push(("GPUs", false, gpus));
    let toolkits = if observed.toolkits.is_empty() {
        "none".to_owned()
    } else {
        observed
            .toolkits
            .iter()
            .map(|t| {
                format!(
                    "{}{} {}",
                    t.full_version.as_deref().unwrap_or(&t.version),
                    if t.default { " (default)" } else { "" },
                    t.path
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    rows.push(("toolkits", false, toolkits));
    let ctk = &observed.container_toolkit;
    let ctk_line = if ctk.installed || ctk.config_path.is_some() {
        format!(
            "{}{}{}",
            ctk.version.as_deref().unwrap_or("version unknown"),
            ctk.mode
                .as_deref()
                .map(|m| format!(", mode {m}"))
                .unwrap_or_default(),
            ctk.config_path
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default()
        )
    } else {
        "not installed".to_owned()
    };
    rows.push(("Container Toolkit", !ctk.installed, ctk_line));
    let runtimes = if observed.runtimes.is_empty() {
        "none configured".to_owned()
    } else {
        observed
            .runtimes
            .iter()
            .map(|r| {
                format!(
                    "{}: nvidia handler {}, default {}, CDI {} ({})",
                    r.name.as_str(),
                    if r.nvidia_handler { "yes" } else { "no" },
                    r.default_runtime.as_deref().unwrap_or("-"),
                    if r.cdi_enabled { "on" } else { "off" },
                    r.config_paths.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let no_handler =
        !observed.runtimes.is_empty() && !observed.runtimes.iter().any(|r| r.nvidia_handler);
    rows.push(("runtimes", no_handler, runtimes));
    let stale = observed.cdi.specs.iter().any(|s| s.stale);
    let cdi = if observed.cdi.specs.is_empty() {
        "no specs".to_owned()
    } else {
        observed
            .cdi
            .specs
            .iter()
            .map(|s| {
                let state = if s.stale {
                    format!("stale, {} problems", s.problems.len())
                } else {
                    "fresh".to_owned()
                };
                format!("{} {} ({state})", s.path, s.kind.as_deref().unwrap_or("?"))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    rows.push(("CDI", stale, cdi));
    let k = &observed.kernel;
    let os = observed
        .os
        .pretty_name
        .clone()
        .or_else(|| observed.os.id.clone())
        .unwrap_or_else(|| "unknown OS".to_owned());
    rows.push((
        "kernel/OS",
        false,
        format!(
            "{}, {os}, Secure Boot {}{}",
            k.release.as_deref().unwrap_or("unknown kernel"),
            match k.secure_boot {
                Some(true) => "on",
                Some(false) => "off",
                None => "unknown (BIOS boot)",
            },
            k.tainted
                .map(|t| format!(", tainted {t}"))
                .unwrap_or_default()
        ),
    ));
    let fm = &observed.fabric_manager;
    let fm_bad = (fm.required && !fm.installed) || fm.matches_driver == Some(false);
    let fm_line = match (fm.required, fm.installed) {
        (false, false) => "not needed (no NVSwitches)".to_owned(),
        (required, _) => format!(
            "{}{}{}",
            if required { "required" } else { "not required" },
            if fm.installed {
                format!(
                    ", installed {}",
                    fm.version.as_deref().unwrap_or("(version unknown)")
                )
            } else {
                ", NOT installed".to_owned()
            },
            match fm.matches_driver {
                Some(true) => ", matches the driver",
                Some(false) => ", does NOT match the driver",
                None => "",
            }
        ),
    };
    rows.push(("Fabric Manager", fm_bad, fm_line));

    // Only a problem where there is a driver to serve.
    if !d.loaded {
        for (label, bad, _) in &mut rows {
            if *label == "Container Toolkit" {
                *bad = false;
            }
        }
    }

    // A layer whose probe failed is unknown, whatever its defaults say.
    let layer_probes: [(&str, &[&str]); 10] = [
        ("driver", &[n::KERNEL_MODULE, n::USERSPACE]),
        ("module", &[n::KERNEL_MODULE]),
        ("CUDA ceiling", &[n::CUDA_CEILING]),
        ("GPUs", &[n::GPUS]),
        ("toolkits", &[n::TOOLKITS]),
        ("Container Toolkit", &[n::CONTAINER_TOOLKIT]),
        ("runtimes", &[n::RUNTIMES]),
        ("CDI", &[n::CDI]),
        ("kernel/OS", &[n::KERNEL, n::OS]),
        ("Fabric Manager", &[n::FABRIC_MANAGER]),
    ];
    for (label, bad, text) in &mut rows {
        let failed: Vec<&str> = layer_probes
            .iter()
            .filter(|(l, _)| l == label)
            .flat_map(|(_, names)| names.iter())
            .filter(|name| status_of(probes, name).is_some_and(|p| p.status == ProbeStatus::Error))
            .copied()
            .collect();
        if !failed.is_empty() {
            *bad = true;
            *text = format!("unknown: probe {} failed (see below)", failed.join(", "));
        }
    }
    let mut out = String::new();
    for (label, bad, text) in rows {
        let marker = if bad { "!" } else { " " };
        let line = format!("{marker} {label:<18} {text}");
        out.push_str(&if bad { style.bad(&line) } else { line });
        out.push('\n');
    }
    let errors: Vec<&ProbeResult> = probes
        .iter()
        .filter(|p| p.status == ProbeStatus::Error)
        .collect();
    let notes: Vec<&ProbeResult> = probes
        .iter()
        .filter(|p| p.status == ProbeStatus::Ok && p.message.is_some())
        .collect();
    let stale_specs: Vec<_> = observed.cdi.specs.iter().filter(|s| s.stale).collect();
    if !errors.is_empty() || !notes.is_empty() || !stale_specs.is_empty() {
        out.push('\n');
    }
    for spec in stale_specs {
        out.push_str(&style.bad(&format!("! {} is stale:", spec.path)));
        out.push('\n');
        for problem in &spec.problems {
            out.push_str(&format!("    - {problem}\n"));
        }
    }
    for p in errors {
        let line = format!(
            "! probe {} failed: {}",
            p.name,
            p.message.as_deref().unwrap_or("no message")
        );
        out.push_str(&style.bad(&line));
        out.push('\n');
    }
    for p in notes {
        out.push_str(&format!(
            "  {}: {}\n",
            p.name,
            p.message.as_deref().unwrap_or("")
        ));
    }
    if let Some(nvml) = status_of(probes, n::NVML)
        && nvml.status == ProbeStatus::Absent
    {
        out.push_str(&format!(
            "  nvml: {}\n",
            nvml.message.as_deref().unwrap_or("not available")
        ));
    }
    out
}

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    // Read the policy first: a bad file is a usage error before any probing.
    let policy = policy(args)?;
    // Loaded once: the probes and the verdict must use the same data.
    let compat = compat_data(args)?;
    let (observed, probes) = probe(args, &compat)?;
    let verdict = judge(&policy, &observed, &probes, &compat);
    let text = match args.output {
        Output::Json => render_json(&observed, &probes, &verdict)?,
        Output::Yaml => render_yaml(&observed, &probes, &verdict)?,
        Output::Table => {
            let colour = std::io::stdout().is_terminal();
            let mut text = render_table(&observed, &probes, colour);
            text.push_str(&render_verdict(&verdict, colour));
            text
        }
    };
    print!("{text}");
    Ok(ExitCode::from(plumbline_policy::exit_code(&verdict.state)))
}
