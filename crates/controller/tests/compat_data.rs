//! `--compat-data`: the controller judges with the file it was given,
//! loaded once before it starts, and a file it cannot use is reported with
//! its name and what is wrong with it.

mod common;

use common::*;
use plumbline_api::keys::labels;
use plumbline_compat::EMBEDDED_TOML;
use plumbline_controller::{ControllerConfig, load_compat_data};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// A file in the temp dir, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "plumbline-controller-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("temp file written");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The embedded data with the H100 filed under compute capability 8.0
/// (Ampere) instead of 9.0 (Hopper): a change the node labels show.
fn h100_as_ampere() -> String {
    let hopper = "family = \"H100\"\nmatch = [\"H100\"]\ncc = \"9.0\"";
    assert!(
        EMBEDDED_TOML.contains(hopper),
        "the embedded H100 row moved"
    );
    EMBEDDED_TOML.replace(
        hopper,
        "family = \"H100\"\nmatch = [\"H100\"]\ncc = \"8.0\"",
    )
}

async fn architecture_label(compat: Option<&TempFile>) -> String {
    let sim = start().await;
    seed_fleet(&sim, "gpu", "a", 1, |_| false);
    sim.store()
        .create(policy(
            "fleet",
            "a",
            json!(1),
            &["Label", "Condition", "Taint"],
        ))
        .expect("policy created");
    let compat = compat.map(|f| load_compat_data(&f.0).expect("compat data loads"));
    let ctl = spawn_controller(
        &sim,
        ControllerConfig {
            compat,
            ..config("c1")
        },
    )
    .await;
    eventually(T, "architecture label", || {
        label(&get_node(&sim, "gpu-00000"), labels::GPU_ARCHITECTURE).is_some()
    })
    .await;
    let arch = label(&get_node(&sim, "gpu-00000"), labels::GPU_ARCHITECTURE)
        .unwrap_or_default()
        .to_string();
    ctl.stop().await;
    arch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_judges_with_the_compat_data_it_was_given() {
    assert_eq!(architecture_label(None).await, "hopper");
    let file = TempFile::new("ampere", &h100_as_ampere());
    assert_eq!(architecture_label(Some(&file)).await, "ampere");
}

#[test]
fn a_missing_file_is_named_with_the_reason() {
    let err = load_compat_data(std::path::Path::new("/definitely/not/here.toml"))
        .expect_err("a missing file does not load");
    let text = err.to_string();
    assert!(text.contains("/definitely/not/here.toml"), "{text}");
    assert!(text.contains("No such file"), "{text}");
    assert_eq!(err.kind(), "compat_data");
}

#[test]
fn a_file_with_bad_content_is_named_with_the_place_and_the_reason() {
    let file = TempFile::new(
        "bad-schema",
        &EMBEDDED_TOML.replacen("schema = 1", "schema = 7", 1),
    );
    let err = load_compat_data(&file.0).expect_err("schema 7 is not read");
    let text = err.to_string();
    assert!(text.contains(&file.0.display().to_string()), "{text}");
    assert!(text.contains("unsupported schema 7"), "{text}");

    let file = TempFile::new("not-toml", "schema = 1\n[[branch]\n");
    let err = load_compat_data(&file.0).expect_err("broken TOML does not load");
    let text = err.to_string();
    assert!(text.contains(&file.0.display().to_string()), "{text}");
    assert!(text.contains("line 2"), "{text}");
}
