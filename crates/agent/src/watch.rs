//! Noticing host changes between timer probes.
//!
//! Configuration and spec directories are watched with inotify, one
//! non-recursive watch per directory the probes read, so an idle host costs
//! nothing: the kernel queues events and the agent sleeps. Watching
//! `/usr/local` or the library directories recursively would add thousands
//! of watches for files no probe reads; instead the agent watches exactly
//! the directories and filters events by file name.
//!
//! A directory that does not exist yet (CDI specs appear when the toolkit is
//! installed) is covered by a watch on its nearest existing ancestor that
//! only reacts to the missing component being created; then every watch is
//! set up again. The same happens when a watched directory is deleted or
//! moved, or `/usr/local` grows a new `cuda-X.Y` directory.
//!
//! procfs and sysfs never report through inotify, so the kernel module's
//! version files are polled instead ([`KernelPoll`]): two small reads a
//! second.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::path::PathBuf;

use futures::StreamExt;
use inotify::{EventMask, EventStream, Inotify, WatchDescriptor, WatchMask};
use plumbline_probe::HostRoot;

/// A host directory the probes read, and the names in it that matter
/// (prefixes; `None` means every name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchedDir {
    pub host_path: &'static str,
    pub names: Option<&'static [&'static str]>,
}

const LIBS: &[&str] = &["libnvidia-ml.so", "libcuda.so"];

/// Every directory watched for changes. Each entry is a directory some
/// probe reads (see docs/probes.md); `/usr/local/cuda-*` directories are
/// added as they are found.
pub const WATCHED_DIRS: &[WatchedDir] = &[
    // Container engines and their drop-ins.
    dir("/etc/containerd", None),
    dir("/etc/containerd/conf.d", None),
    dir("/etc/containerd/config.d", None),
    dir("/etc/docker", Some(&["daemon.json"])),
    dir("/etc/crio", None),
    dir("/etc/crio/crio.conf.d", None),
    dir("/etc/crio/conf.d", None),
    // NVIDIA Container Toolkit (package and GPU Operator installs).
    dir("/etc/nvidia-container-runtime", None),
    dir(
        "/usr/local/nvidia/toolkit/.config/nvidia-container-runtime",
        None,
    ),
    dir("/usr/local/nvidia/toolkit", Some(&["nvidia-c"])),
    dir("/usr/bin", Some(&["nvidia-c"])),
    // CDI specs.
    dir("/etc/cdi", None),
    dir("/var/run/cdi", None),
    // The same directory where only /run is mounted (the chart's layout).
    dir("/run/cdi", None),
    // Host CUDA toolkits and the /usr/local/cuda alternatives chain.
    dir("/usr/local", Some(&["cuda"])),
    dir("/etc/alternatives", Some(&["cuda"])),
    // Userspace driver libraries (a driver upgrade without a reboot).
    dir("/usr/lib/x86_64-linux-gnu", Some(LIBS)),
    dir("/usr/lib/aarch64-linux-gnu", Some(LIBS)),
    dir("/usr/lib64", Some(LIBS)),
    // Package database (toolkit and Container Toolkit versions).
    dir("/var/lib/dpkg", Some(&["status"])),
];

const fn dir(host_path: &'static str, names: Option<&'static [&'static str]>) -> WatchedDir {
    WatchedDir { host_path, names }
}

/// Names inside a `cuda-X.Y` directory that the toolkit probe reads.
const TOOLKIT_FILES: &[&str] = &["version.json", "version.txt"];

/// What one inotify watch is for. One directory can be watched for itself
/// and be the nearest existing ancestor of missing ones at the same time
/// (inotify gives one descriptor per inode), so both live in one value.
#[derive(Debug, Clone, Default)]
struct Role {
    /// Watched for itself: events for its files count.
    watched: bool,
    /// Every name counts (otherwise only those starting with `prefixes`).
    all_names: bool,
    prefixes: Vec<&'static str>,
    /// Missing directories below it, by the child name on the way down:
    /// creating one counts and sets the watches up again.
    children: Vec<String>,
    /// A matching entry appearing here sets the watches up again
    /// (`/usr/local` and its `cuda-X.Y` directories).
    rescan_on_match: bool,
}

fn dir_mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MODIFY
        | WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

fn ancestor_mask() -> WatchMask {
    WatchMask::CREATE | WatchMask::MOVED_TO | WatchMask::DELETE_SELF | WatchMask::MOVE_SELF
}

/// The inotify watches over a host tree.
pub(crate) struct FileWatcher {
    host: HostRoot,
    stream: EventStream<Vec<u8>>,
    roles: HashMap<WatchDescriptor, Role>,
}

impl FileWatcher {
    pub(crate) fn new(host: HostRoot) -> io::Result<FileWatcher> {
        let inotify = Inotify::init()?;
        let stream = inotify.into_event_stream(vec![0u8; 4096])?;
        let mut watcher = FileWatcher {
            host,
            stream,
            roles: HashMap::new(),
        };
        watcher.rescan();
        Ok(watcher)
    }

    /// How many directories are watched (for logs and tests).
    pub(crate) fn watch_count(&self) -> usize {
        self.roles.len()
    }

    /// Drops every watch and sets them up again from the tree as it is now.
    fn rescan(&mut self) {
        let mut watches = self.stream.watches();
        for (wd, _) in self.roles.drain() {
            // The watch may already be gone with its directory.
            let _ = watches.remove(wd);
        }
        let mut wanted: Vec<(&'static str, String, Option<&'static [&'static str]>)> = WATCHED_DIRS
            .iter()
            .map(|w| (w.host_path, w.host_path.to_string(), w.names))
            .collect();
        if let Ok(entries) = self.host.read_dir("/usr/local") {
            for name in entries.iter().filter(|n| n.starts_with("cuda-")) {
                wanted.push(("", format!("/usr/local/{name}"), Some(TOOLKIT_FILES)));
            }
        }
        // Merge by real directory first: adding a second watch on the same
        // inode would replace the first one's mask.
        let mut by_dir: Vec<(PathBuf, Role)> = Vec::new();
        for (static_path, host_path, names) in wanted {
            if let Some(real) = self.real_dir(&host_path) {
                let role = role_for(&mut by_dir, real);
                role.watched = true;
                match names {
                    None => role.all_names = true,
                    Some(prefixes) => role.prefixes.extend_from_slice(prefixes),
                }
                role.rescan_on_match |= static_path == "/usr/local";
            } else if let Some((real, child)) = self.nearest_ancestor(&host_path) {
                let role = role_for(&mut by_dir, real);
                if !role.children.contains(&child) {
                    role.children.push(child);
                }
            }
        }
        for (real, role) in by_dir {
            let mask = if role.watched {
                dir_mask()
            } else {
                ancestor_mask()
            };
            if let Ok(wd) = watches.add(&real, mask) {
                self.roles.insert(wd, role);
            }
        }
    }

    /// Where a host directory is on this machine, if it exists.
    fn real_dir(&self, host_path: &str) -> Option<PathBuf> {
        match self.host.resolve(host_path) {
            Ok(r) if r.is_dir() => Some(r.real_path),
            _ => None,
        }
    }

    /// The nearest existing ancestor of a missing host directory, and the
    /// name of the child on the way down.
    fn nearest_ancestor(&self, host_path: &str) -> Option<(PathBuf, String)> {
        let mut path = host_path.trim_end_matches('/').to_string();
        loop {
            let cut = path.rfind('/')?;
            let child = path[cut + 1..].to_string();
            let parent = if cut == 0 { "/" } else { &path[..cut] };
            if let Some(real) = self.real_dir(parent) {
                return Some((real, child));
            }
            if cut == 0 {
                return None;
            }
            path.truncate(cut);
        }
    }

    /// Waits for the next change that matters. Returns `false` when the
    /// event stream has ended (the agent then relies on timer and poll).
    pub(crate) async fn changed(&mut self) -> bool {
        loop {
            let Some(event) = self.stream.next().await else {
                return false;
            };
            let Ok(event) = event else {
                return false;
            };
            if event.mask.contains(EventMask::Q_OVERFLOW) {
                self.rescan();
                return true;
            }
            let (relevant, rescan) = match self.roles.get(&event.wd) {
                Some(role) => judge(role, event.mask, event.name.as_deref()),
                None => (false, false),
            };
            if rescan {
                self.rescan();
            }
            if relevant {
                return true;
            }
        }
    }
}

/// The entry for `real` in `by_dir`, added if new.
fn role_for(by_dir: &mut Vec<(PathBuf, Role)>, real: PathBuf) -> &mut Role {
    let i = match by_dir.iter().position(|(p, _)| *p == real) {
        Some(i) => i,
        None => {
            by_dir.push((real, Role::default()));
            by_dir.len() - 1
        }
    };
    &mut by_dir[i].1
}

/// Whether an event matters, and whether the watches must be set up again.
fn judge(role: &Role, mask: EventMask, name: Option<&OsStr>) -> (bool, bool) {
    let gone = mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED);
    if gone {
        return (true, true);
    }
    let name = name.and_then(OsStr::to_str).unwrap_or("");
    let child = role.children.iter().any(|c| c == name);
    let matched =
        role.watched && (role.all_names || role.prefixes.iter().any(|p| name.starts_with(p)));
    let new_dir = mask.contains(EventMask::ISDIR)
        && mask.intersects(EventMask::CREATE | EventMask::MOVED_TO | EventMask::MOVED_FROM);
    (
        child || matched,
        child || (matched && (role.rescan_on_match || new_dir)),
    )
}

/// Host paths of the kernel files polled for a driver reload.
pub const POLLED_FILES: &[&str] = &["/sys/module/nvidia/version", "/proc/driver/nvidia/version"];

/// Re-reads the kernel module version files and says when they changed.
#[derive(Debug)]
pub(crate) struct KernelPoll {
    paths: Vec<PathBuf>,
    last: Vec<Option<Vec<u8>>>,
}

impl KernelPoll {
    pub(crate) fn new(host: &HostRoot) -> KernelPoll {
        let paths: Vec<PathBuf> = POLLED_FILES
            .iter()
            .map(|p| host.root().join(p.trim_start_matches('/')))
            .collect();
        let last = paths.iter().map(|p| read_small(p)).collect();
        KernelPoll { paths, last }
    }

    /// Reads the files again; `true` when any differs from the last read.
    pub(crate) fn changed(&mut self) -> bool {
        let mut changed = false;
        for (path, last) in self.paths.iter().zip(self.last.iter_mut()) {
            let now = read_small(path);
            if now != *last {
                *last = now;
                changed = true;
            }
        }
        changed
    }
}

/// Contents of a small kernel file (at most 4 KiB), `None` if unreadable.
fn read_small(path: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let mut buf = Vec::with_capacity(256);
    file.take(4096).read_to_end(&mut buf).ok()?;
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn host(dir: &tempfile::TempDir) -> HostRoot {
        HostRoot::new(dir.path()).expect("temp dir is a directory")
    }

    async fn changed_within(w: &mut FileWatcher, ms: u64) -> bool {
        tokio::time::timeout(Duration::from_millis(ms), w.changed())
            .await
            .unwrap_or(false)
    }

    #[tokio::test]
    async fn sees_a_change_in_a_watched_dir_and_ignores_other_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("etc/docker")).expect("mkdir");
        let mut w = FileWatcher::new(host(&dir)).expect("inotify available");
        std::fs::write(dir.path().join("etc/docker/other.json"), "{}").expect("write");
        assert!(
            !changed_within(&mut w, 200).await,
            "a file no probe reads is ignored"
        );
        std::fs::write(dir.path().join("etc/docker/daemon.json"), "{}").expect("write");
        assert!(changed_within(&mut w, 2000).await, "daemon.json counts");
    }

    #[tokio::test]
    async fn a_directory_created_later_is_watched() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
        let mut w = FileWatcher::new(host(&dir)).expect("inotify available");
        std::fs::create_dir_all(dir.path().join("etc/cdi")).expect("mkdir");
        assert!(
            changed_within(&mut w, 2000).await,
            "creating /etc/cdi counts"
        );
        std::fs::write(dir.path().join("etc/cdi/nvidia.yaml"), "cdiVersion: 0.5.0").expect("write");
        assert!(
            changed_within(&mut w, 2000).await,
            "a spec in the new directory counts"
        );
    }

    #[tokio::test]
    async fn a_new_toolkit_directory_is_watched() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("usr/local")).expect("mkdir");
        let mut w = FileWatcher::new(host(&dir)).expect("inotify available");
        let before = w.watch_count();
        std::fs::create_dir_all(dir.path().join("usr/local/cuda-12.9")).expect("mkdir");
        assert!(changed_within(&mut w, 2000).await);
        assert_eq!(w.watch_count(), before + 1, "cuda-12.9 gets its own watch");
        std::fs::write(dir.path().join("usr/local/cuda-12.9/version.json"), "{}").expect("write");
        assert!(changed_within(&mut w, 2000).await, "version.json counts");
    }

    #[test]
    fn kernel_poll_sees_a_new_version() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("sys/module/nvidia/version");
        std::fs::create_dir_all(file.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&file, "550.54.15\n").expect("write");
        let mut poll = KernelPoll::new(&host(&dir));
        assert!(!poll.changed(), "nothing changed yet");
        std::fs::write(&file, "580.95.05\n").expect("write");
        assert!(poll.changed());
        assert!(!poll.changed(), "reported once");
        std::fs::remove_file(&file).expect("rm");
        assert!(poll.changed(), "an unloaded module is a change too");
    }
}
