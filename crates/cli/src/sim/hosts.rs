//! The simulated hosts on disk: one directory per node, written from the
//! generated specs, changed by the simulator (drift, rollout) or by hand,
//! and watched for changes by polling.
//!
//! Why polling and not the agent's inotify watches: each agent with
//! `watch_files` opens its own inotify instance, and the kernel allows 128
//! per user by default, so a few hundred simulated agents would exhaust
//! them for everything else on the machine. One thread instead walks every
//! host tree in turn (a few hundred small directories; `lstat` only) and
//! wakes a node's agent when its tree's fingerprint changes. Changes the
//! simulator makes itself wake the agent directly.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use plumbline_sim::fleet::{self, FleetError, GeneratedNode};
use tokio::sync::Notify;

/// Marks a directory as made by `plumbline sim`, so a second run may
/// clear it.
const MARKER: &str = ".plumbline-sim";

/// Where the host trees live.
#[derive(Debug)]
pub enum HostsDir {
    /// A temporary directory, removed when dropped.
    Temp(tempfile::TempDir),
    /// A directory the user named; kept.
    Kept(PathBuf),
}

impl HostsDir {
    pub fn path(&self) -> &Path {
        match self {
            HostsDir::Temp(t) => t.path(),
            HostsDir::Kept(p) => p,
        }
    }

    pub fn is_temporary(&self) -> bool {
        matches!(self, HostsDir::Temp(_))
    }

    /// A fresh temporary directory, or `dir` emptied of an earlier run's
    /// hosts. A directory holding anything else is refused rather than
    /// mixed with.
    pub fn prepare(dir: Option<&Path>) -> anyhow::Result<HostsDir> {
        let Some(dir) = dir else {
            let mut builder = tempfile::Builder::new();
            builder.prefix("plumbline-sim-");
            // Thousands of small trees are written and removed far faster
            // in memory than on a disk (where each removal may be a
            // discard); a TMPDIR the user set wins.
            let shm = Path::new("/dev/shm");
            let in_memory = std::env::var_os("TMPDIR").is_none() && shm.is_dir();
            let temp = match in_memory.then(|| builder.tempdir_in(shm)) {
                Some(Ok(t)) => t,
                _ => builder
                    .tempdir()
                    .context("creating a temporary directory for the simulated hosts")?,
            };
            std::fs::write(temp.path().join(MARKER), "plumbline sim hosts\n")
                .with_context(|| format!("writing {}", temp.path().display()))?;
            return Ok(HostsDir::Temp(temp));
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        if !entries.is_empty() && !dir.join(MARKER).exists() {
            anyhow::bail!(
                "--hosts-dir {} is not empty and was not made by plumbline sim: choose an empty or new directory",
                dir.display()
            );
        }
        for entry in entries {
            if entry.is_dir() && !entry.is_symlink() {
                std::fs::remove_dir_all(&entry)
                    .with_context(|| format!("clearing {}", entry.display()))?;
            }
        }
        std::fs::write(dir.join(MARKER), "plumbline sim hosts\n")
            .with_context(|| format!("writing to {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;
        Ok(HostsDir::Kept(dir))
    }
}

/// One simulated node: its generated spec and its tree.
#[derive(Debug)]
pub struct SimNode {
    pub name: String,
    pub root: PathBuf,
    state: Mutex<GeneratedNode>,
    /// Wakes the node's agent.
    pub changed: Arc<Notify>,
}

impl SimNode {
    pub fn new(node: GeneratedNode, hosts: &Path) -> SimNode {
        SimNode {
            name: node.name.clone(),
            root: hosts.join(&node.name),
            state: Mutex::new(node),
            changed: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GeneratedNode> {
        // A panic while holding the lock leaves a spec that is still a
        // spec; keep going with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the node's spec as it is now.
    pub fn snapshot(&self) -> GeneratedNode {
        self.lock().clone()
    }

    /// Writes the node's whole tree.
    pub fn write(&self) -> Result<(), FleetError> {
        let files = self.lock().host.files();
        fleet::write_tree(&self.root, &files)
    }

    /// Changes the spec with `f`, writes the difference and wakes the
    /// agent. Returns `f`'s result and the host paths that changed.
    pub fn change<R>(
        &self,
        f: impl FnOnce(&mut GeneratedNode) -> R,
    ) -> Result<(R, Vec<String>), FleetError> {
        let mut node = self.lock();
        let before = node.host.files();
        let result = f(&mut node);
        let changed = fleet::sync_tree(&self.root, &before, &node.host.files())?;
        drop(node);
        if !changed.is_empty() {
            self.changed.notify_one();
        }
        Ok((result, changed))
    }
}

/// Writes every node's tree, on as many threads as there are cores,
/// calling `progress(done)` now and then.
pub fn write_all(nodes: &[Arc<SimNode>], progress: impl Fn(usize) + Sync) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(nodes.len().max(1));
    let done = std::sync::atomic::AtomicUsize::new(0);
    let chunk = nodes.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .chunks(chunk)
            .map(|part| {
                let done = &done;
                let progress = &progress;
                scope.spawn(move || -> Result<(), FleetError> {
                    for node in part {
                        node.write()?;
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if n.is_multiple_of(100) {
                            progress(n);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(result) => result.context("writing the simulated hosts")?,
                Err(_) => anyhow::bail!("a thread writing the simulated hosts panicked"),
            }
        }
        Ok(())
    })
}

/// A fingerprint of everything under `root` (names, types, sizes, inode
/// numbers and modification times), without following links.
fn fingerprint(root: &Path) -> u64 {
    fn walk(dir: &Path, h: &mut DefaultHasher) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            path.hash(h);
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            (
                meta.ino(),
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.mode(),
            )
                .hash(h);
            if meta.is_dir() {
                walk(&path, h);
            }
        }
    }
    let mut h = DefaultHasher::new();
    walk(root, &mut h);
    h.finish()
}

/// Polls every host tree until `stop` is set, and wakes the agent of each
/// node whose tree changed. A pass starts at most once per `cycle`, and
/// never sooner than nine times the last pass took after it: a few dozen
/// hosts are polled every second, thousands every few seconds more, and the
/// poller stays under about a tenth of a core either way.
pub fn spawn_poller(
    nodes: Vec<Arc<SimNode>>,
    cycle: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("sim-host-poll".into())
        .spawn(move || {
            let mut last: Vec<u64> = nodes.iter().map(|n| fingerprint(&n.root)).collect();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                for (node, seen) in nodes.iter().zip(last.iter_mut()) {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let now = fingerprint(&node.root);
                    if now != *seen {
                        *seen = now;
                        node.changed.notify_one();
                    }
                }
                let took = started.elapsed();
                let until = Instant::now() + cycle.saturating_sub(took).max(took * 9);
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_changes_with_any_edit_and_only_then() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("etc/containerd")).expect("mkdir");
        let file = dir.path().join("etc/containerd/config.toml");
        std::fs::write(&file, "version = 2\n").expect("write");
        let a = fingerprint(dir.path());
        assert_eq!(a, fingerprint(dir.path()));
        // A longer file: an edit within the same clock tick keeps the
        // modification time, so only the size tells.
        std::fs::write(&file, "version = 3 # edited\n").expect("write");
        let b = fingerprint(dir.path());
        assert_ne!(a, b, "an edit in place");
        std::fs::write(dir.path().join("etc/new"), "").expect("write");
        assert_ne!(b, fingerprint(dir.path()), "a new file");
    }

    #[test]
    fn a_directory_with_foreign_files_is_refused_and_ours_is_cleared() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("notes.txt"), "mine").expect("write");
        let err = HostsDir::prepare(Some(dir.path())).expect_err("refused");
        assert!(
            err.to_string().contains("not made by plumbline sim"),
            "{err}"
        );

        let ours = dir.path().join("hosts");
        let prepared = HostsDir::prepare(Some(&ours)).expect("new directory");
        std::fs::create_dir_all(prepared.path().join("node-1/etc")).expect("mkdir");
        let again = HostsDir::prepare(Some(&ours)).expect("our own directory");
        assert!(!again.path().join("node-1").exists(), "old hosts cleared");
        assert!(!again.is_temporary());
    }
}
