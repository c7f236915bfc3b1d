//! `HostRoot`: the only way a probe reaches a host file.
//!
//! The agent sees the host under a mount point (`/host`), tests see it under
//! a fixture directory. Host trees are full of absolute symlinks
//! (`/usr/local/cuda -> /etc/alternatives/cuda -> /usr/local/cuda-12.6`,
//! `/var/run -> /run`) that would leave the mount if the kernel followed
//! them, so resolution is done here, one component at a time, with every
//! absolute target re-rooted under the host root. Every error names the path
//! as the host sees it, because that is the path an operator can look at.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Default largest file a probe reads: every file probes read is a few
/// kilobytes, so anything this big is junk, not data.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 4 * 1024 * 1024;

/// Symlinks followed while resolving one path before it is called a loop;
/// the same number Linux uses (`MAXSYMLINKS`).
pub const MAX_SYMLINKS: usize = 40;

/// Most paths one glob may expand to, so a hostile `imports` line cannot
/// make a probe walk the whole host.
const MAX_GLOB_MATCHES: usize = 256;

/// Why a host path could not be read. `path` is always the path as the host
/// sees it (`/proc/driver/nvidia/version`), never the mount-point path.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{path} does not exist")]
    NotFound { path: String },
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("reading {path}: {size} bytes is over the {limit}-byte limit")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("reading {path}: not text (binary data or invalid UTF-8)")]
    NotText { path: String },
    #[error("resolving {path}: more than {MAX_SYMLINKS} symlinks (a symlink loop)")]
    SymlinkLoop { path: String },
    #[error("reading {path}: is a directory, not a file")]
    IsADirectory { path: String },
    #[error("reading {path}: not a regular file (a device, FIFO or socket)")]
    NotAFile { path: String },
    #[error("resolving {path}: {component} is not a directory")]
    NotADirectory { path: String, component: String },
    #[error("invalid host path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
}

impl HostError {
    /// Stable short name, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            HostError::NotFound { .. } => "not_found",
            HostError::Io { .. } => "io",
            HostError::TooLarge { .. } => "too_large",
            HostError::NotText { .. } => "not_text",
            HostError::SymlinkLoop { .. } => "symlink_loop",
            HostError::IsADirectory { .. } => "is_a_directory",
            HostError::NotAFile { .. } => "not_a_file",
            HostError::NotADirectory { .. } => "not_a_directory",
            HostError::InvalidPath { .. } => "invalid_path",
        }
    }

    /// The path does not exist on the host: usually "absent", not an error.
    pub fn is_not_found(&self) -> bool {
        matches!(self, HostError::NotFound { .. })
    }
}

/// A hook consulted before every read and directory listing, so tests can
/// make a path fail the way a real host does (tests run as root, so a
/// permission error cannot be made with file modes).
pub trait ReadHook: Send + Sync {
    /// An error to return instead of reading `host_path`, or `None`.
    fn before_read(&self, host_path: &str) -> Option<io::Error>;
}

/// What one pass has learnt about the tree.
#[derive(Debug, Default)]
struct PassMemory {
    dirs: HashSet<String>,
    missing: HashSet<String>,
}

/// A path after resolution.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The canonical path as the host sees it, every symlink followed.
    pub host_path: String,
    /// Where that is on this machine (under the root).
    pub real_path: PathBuf,
    is_dir: bool,
}

impl Resolved {
    pub fn is_dir(&self) -> bool {
        self.is_dir
    }
}

/// The host's filesystem, seen from under `root`. Cheap to clone.
#[derive(Clone)]
pub struct HostRoot {
    root: PathBuf,
    max_file_size: u64,
    hook: Option<Arc<dyn ReadHook>>,
    log: Option<Arc<Mutex<Vec<PathBuf>>>>,
    /// During one pass: real paths known to be directories (not symlinks),
    /// and real paths known not to exist.
    dirs: Option<Arc<Mutex<PassMemory>>>,
}

impl fmt::Debug for HostRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostRoot")
            .field("root", &self.root)
            .field("max_file_size", &self.max_file_size)
            .field("hook", &self.hook.is_some())
            .field("log", &self.log.is_some())
            .finish()
    }
}

impl HostRoot {
    /// The host mounted at `root` (`/` when probing the machine itself).
    /// Fails when `root` is not a directory.
    pub fn new(root: impl Into<PathBuf>) -> Result<HostRoot, HostError> {
        let root = root.into();
        let shown = root.display().to_string();
        match fs::metadata(&root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(HostError::NotADirectory {
                    path: shown.clone(),
                    component: shown,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(HostError::NotFound { path: shown });
            }
            Err(source) => {
                return Err(HostError::Io {
                    path: shown,
                    source,
                });
            }
        }
        Ok(HostRoot {
            root,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            hook: None,
            log: None,
            dirs: None,
        })
    }

    /// The directory the host is mounted at.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn max_file_size(&self) -> u64 {
        self.max_file_size
    }

    /// The same host with another read limit.
    pub fn with_max_file_size(mut self, limit: u64) -> HostRoot {
        self.max_file_size = limit;
        self
    }

    /// The same host with a hook consulted before every read.
    pub fn with_hook(mut self, hook: Arc<dyn ReadHook>) -> HostRoot {
        self.hook = Some(hook);
        self
    }

    /// The same host, recording the real path of every file read (for the
    /// benchmark's floor and for documenting what the probes need).
    pub fn with_read_log(mut self) -> HostRoot {
        self.log = Some(Arc::new(Mutex::new(Vec::new())));
        self
    }

    /// The same host, remembering which directories are real directories
    /// rather than symlinks, so each is looked at once. A probe pass is a
    /// snapshot, so [`crate::probe_host`] uses a fresh memory per pass; a
    /// long-lived `HostRoot` should not, as the host changes under it.
    pub fn with_dir_memory(mut self) -> HostRoot {
        self.dirs = Some(Arc::new(Mutex::new(PassMemory::default())));
        self
    }

    /// `Some(true)`: a directory; `Some(false)`: does not exist; `None`:
    /// not known.
    fn recall(&self, host: &str) -> Option<bool> {
        let memory = self.dirs.as_ref()?.lock().ok()?;
        if memory.dirs.contains(host) {
            Some(true)
        } else if memory.missing.contains(host) {
            Some(false)
        } else {
            None
        }
    }

    fn remember(&self, host: &str, is_dir: bool) {
        if let Some(memory) = &self.dirs
            && let Ok(mut memory) = memory.lock()
        {
            if is_dir {
                memory.dirs.insert(host.to_owned());
            } else {
                memory.missing.insert(host.to_owned());
            }
        }
    }

    /// Real paths of the files read so far, in order, when logging.
    pub fn files_read(&self) -> Vec<PathBuf> {
        match &self.log {
            Some(log) => log.lock().map(|l| l.clone()).unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Resolves `host_path`, following every symlink including the last.
    pub fn resolve(&self, host_path: &str) -> Result<Resolved, HostError> {
        self.resolve_inner(host_path, true)
    }

    /// Resolves the parent directories of `host_path` but not its last
    /// component (like `lstat`).
    pub fn resolve_no_follow(&self, host_path: &str) -> Result<Resolved, HostError> {
        self.resolve_inner(host_path, false)
    }

    fn resolve_inner(&self, host_path: &str, follow_last: bool) -> Result<Resolved, HostError> {
        if !host_path.starts_with('/') {
            return Err(HostError::InvalidPath {
                path: host_path.to_owned(),
                reason: "not absolute",
            });
        }
        if host_path.contains('\0') {
            return Err(HostError::InvalidPath {
                path: host_path.to_owned(),
                reason: "contains a NUL byte",
            });
        }
        // `todo` holds the components still to walk, next first; a symlink's
        // target is pushed in front of what followed the link.
        let mut todo: VecDeque<String> = split(host_path).map(str::to_owned).collect();
        // The host path walked so far, "" for the root.
        let mut done = String::new();
        let mut real = self.root.clone();
        let mut is_dir = true;
        let mut links = 0usize;
        while let Some(component) = todo.pop_front() {
            if component == "." {
                continue;
            }
            if component == ".." {
                // `..` of the host root is the host root, as on a real host.
                if !done.is_empty() {
                    pop_component(&mut done);
                    real.pop();
                }
                is_dir = true;
                continue;
            }
            real.push(&component);
            done.push('/');
            done.push_str(&component);
            match self.recall(&done) {
                Some(true) => {
                    is_dir = true;
                    continue;
                }
                Some(false) => {
                    return Err(HostError::NotFound {
                        path: host_path.to_owned(),
                    });
                }
                None => {}
            }
            let md = match fs::symlink_metadata(&real) {
                Ok(md) => md,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.remember(&done, false);
                    return Err(HostError::NotFound {
                        path: host_path.to_owned(),
                    });
                }
                Err(source) => {
                    return Err(HostError::Io {
                        path: shown(&done).to_owned(),
                        source,
                    });
                }
            };
            if md.file_type().is_symlink() && (follow_last || !todo.is_empty()) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(HostError::SymlinkLoop {
                        path: host_path.to_owned(),
                    });
                }
                let target = fs::read_link(&real).map_err(|source| HostError::Io {
                    path: shown(&done).to_owned(),
                    source,
                })?;
                let Some(target) = target.to_str() else {
                    return Err(HostError::InvalidPath {
                        path: shown(&done).to_owned(),
                        reason: "symlink target is not UTF-8",
                    });
                };
                pop_component(&mut done);
                real.pop();
                if target.starts_with('/') {
                    done.clear();
                    real = self.root.clone();
                }
                for part in split(target).rev() {
                    todo.push_front(part.to_owned());
                }
                // `done` now ends at a directory (or the root).
                is_dir = true;
                continue;
            }
            is_dir = md.is_dir();
            if is_dir {
                self.remember(&done, true);
            }
            if !todo.is_empty() && !is_dir {
                return Err(HostError::NotADirectory {
                    path: host_path.to_owned(),
                    component: shown(&done).to_owned(),
                });
            }
        }
        Ok(Resolved {
            host_path: shown(&done).to_owned(),
            real_path: real,
            is_dir,
        })
    }

    /// Whether `host_path` exists (after following symlinks).
    pub fn exists(&self, host_path: &str) -> bool {
        self.resolve(host_path).is_ok()
    }

    /// Whether `host_path` is a directory (after following symlinks).
    pub fn is_dir(&self, host_path: &str) -> bool {
        self.resolve(host_path).is_ok_and(|r| r.is_dir())
    }

    /// The canonical host path `host_path` resolves to.
    pub fn canonical(&self, host_path: &str) -> Result<String, HostError> {
        self.resolve(host_path).map(|r| r.host_path)
    }

    fn check_hook(&self, host_path: &str) -> Result<(), HostError> {
        if let Some(hook) = &self.hook
            && let Some(source) = hook.before_read(host_path)
        {
            return Err(HostError::Io {
                path: host_path.to_owned(),
                source,
            });
        }
        Ok(())
    }

    /// Opens `host_path` without resolving it component by component, when
    /// this pass already knows every parent to be a real directory: the
    /// last component is opened with `O_NOFOLLOW`, so a symlink there fails
    /// (`ELOOP`) and takes the slow path. `None`: take the slow path.
    fn open_known(&self, host_path: &str) -> Option<Result<(File, PathBuf), HostError>> {
        self.dirs.as_ref()?;
        let (parent, name) = host_path.rsplit_once('/')?;
        if name.is_empty() || name == "." || name == ".." || host_path.contains("//") {
            return None;
        }
        let mut prefix = String::with_capacity(parent.len());
        for component in split(parent) {
            if component == "." || component == ".." {
                return None;
            }
            prefix.push('/');
            prefix.push_str(component);
            if self.recall(&prefix) != Some(true) {
                return None;
            }
        }
        let real = self.root.join(&host_path[1..]);
        let opened = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&real);
        match opened {
            Ok(file) => Some(Ok((file, real))),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Some(Err(HostError::NotFound {
                path: host_path.to_owned(),
            })),
            Err(_) => None,
        }
    }

    /// Reads a file of at most `limit` bytes.
    pub fn read_bytes_with_limit(&self, host_path: &str, limit: u64) -> Result<Vec<u8>, HostError> {
        self.check_hook(host_path)?;
        let io_err = |source| HostError::Io {
            path: host_path.to_owned(),
            source,
        };
        let (file, real_path) = match self.open_known(host_path) {
            Some(opened) => opened?,
            None => {
                let resolved = self.resolve(host_path)?;
                if resolved.is_dir {
                    return Err(HostError::IsADirectory {
                        path: host_path.to_owned(),
                    });
                }
                // O_NONBLOCK: a FIFO where a file belongs must not hang the
                // probe in open(2).
                let file = fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&resolved.real_path)
                    .map_err(io_err)?;
                (file, resolved.real_path)
            }
        };
        let md = file.metadata().map_err(io_err)?;
        if md.is_dir() {
            return Err(HostError::IsADirectory {
                path: host_path.to_owned(),
            });
        }
        if !md.is_file() {
            return Err(HostError::NotAFile {
                path: host_path.to_owned(),
            });
        }
        // procfs and sysfs files report size 0, so the size is checked
        // again while reading.
        if md.len() > limit {
            return Err(HostError::TooLarge {
                path: host_path.to_owned(),
                size: md.len(),
                limit,
            });
        }
        let capacity = usize::try_from(md.len().min(limit)).unwrap_or(0);
        let mut buf = Vec::with_capacity(capacity.saturating_add(1));
        file.take(limit.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(io_err)?;
        if buf.len() as u64 > limit {
            return Err(HostError::TooLarge {
                path: host_path.to_owned(),
                size: buf.len() as u64,
                limit,
            });
        }
        if let Some(log) = &self.log
            && let Ok(mut log) = log.lock()
        {
            log.push(real_path);
        }
        Ok(buf)
    }

    /// Reads a file, refusing one over the host's read limit.
    pub fn read_bytes(&self, host_path: &str) -> Result<Vec<u8>, HostError> {
        self.read_bytes_with_limit(host_path, self.max_file_size)
    }

    /// Reads a text file of at most `limit` bytes. Invalid UTF-8 or a NUL
    /// byte means the file is not the text it should be.
    pub fn read_to_string_with_limit(
        &self,
        host_path: &str,
        limit: u64,
    ) -> Result<String, HostError> {
        let bytes = self.read_bytes_with_limit(host_path, limit)?;
        if bytes.contains(&0) {
            return Err(HostError::NotText {
                path: host_path.to_owned(),
            });
        }
        String::from_utf8(bytes).map_err(|_| HostError::NotText {
            path: host_path.to_owned(),
        })
    }

    /// Reads a text file, refusing one over the host's read limit.
    pub fn read_to_string(&self, host_path: &str) -> Result<String, HostError> {
        self.read_to_string_with_limit(host_path, self.max_file_size)
    }

    /// Names in a directory, sorted.
    pub fn read_dir(&self, host_path: &str) -> Result<Vec<String>, HostError> {
        self.check_hook(host_path)?;
        let resolved = self.resolve(host_path)?;
        let io_err = |source| HostError::Io {
            path: host_path.to_owned(),
            source,
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(&resolved.real_path).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            if let Some(name) = entry.file_name().to_str() {
                // The entry type comes with the listing (no extra syscall)
                // and tells a real directory from a symlink to one.
                if self.dirs.is_some() && entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let parent = resolved.host_path.trim_end_matches('/');
                    self.remember(&format!("{parent}/{name}"), true);
                }
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Expands a glob (`*`, `?`, `[...]` in any component) against the
    /// host, symlinks re-rooted like every other path. Returns existing host
    /// paths, sorted; a directory that does not exist simply matches
    /// nothing.
    pub fn glob(&self, pattern: &str) -> Result<Vec<String>, HostError> {
        if !pattern.starts_with('/') {
            return Err(HostError::InvalidPath {
                path: pattern.to_owned(),
                reason: "not absolute",
            });
        }
        let mut prefixes = vec![String::new()];
        for component in split(pattern) {
            let mut next = Vec::new();
            if component.contains(['*', '?', '[']) {
                let matcher =
                    glob::Pattern::new(component).map_err(|_| HostError::InvalidPath {
                        path: pattern.to_owned(),
                        reason: "invalid glob pattern",
                    })?;
                for prefix in &prefixes {
                    let dir = if prefix.is_empty() { "/" } else { prefix };
                    let names = match self.read_dir(dir) {
                        Ok(names) => names,
                        Err(HostError::NotFound { .. } | HostError::NotADirectory { .. }) => {
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    for name in names {
                        // Like a shell: `*` does not match dot files.
                        if name.starts_with('.') && !component.starts_with('.') {
                            continue;
                        }
                        if matcher.matches(&name) {
                            next.push(format!("{prefix}/{name}"));
                        }
                    }
                }
            } else {
                next = prefixes
                    .iter()
                    .map(|p| format!("{p}/{component}"))
                    .collect();
            }
            if next.len() > MAX_GLOB_MATCHES {
                return Err(HostError::InvalidPath {
                    path: pattern.to_owned(),
                    reason: "glob matches too many paths",
                });
            }
            prefixes = next;
        }
        let mut found: Vec<String> = prefixes.into_iter().filter(|p| self.exists(p)).collect();
        found.sort();
        Ok(found)
    }
}

fn split(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

/// The walked host path as shown in messages: `/` for the root.
fn shown(done: &str) -> &str {
    if done.is_empty() { "/" } else { done }
}

fn pop_component(done: &mut String) {
    let cut = done.rfind('/').unwrap_or(0);
    done.truncate(cut);
}

/// Joins a host directory and a name into a host path.
pub fn host_join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, HostRoot) {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("etc/alternatives")).unwrap();
        fs::create_dir_all(r.join("usr/local/cuda-12.6")).unwrap();
        fs::write(r.join("usr/local/cuda-12.6/version.json"), "{}").unwrap();
        symlink("/usr/local/cuda-12.6", r.join("etc/alternatives/cuda")).unwrap();
        symlink("/etc/alternatives/cuda", r.join("usr/local/cuda")).unwrap();
        symlink("../../etc", r.join("usr/local/etc-up")).unwrap();
        symlink("loop-b", r.join("etc/loop-a")).unwrap();
        symlink("loop-a", r.join("etc/loop-b")).unwrap();
        symlink("/", r.join("etc/to-root")).unwrap();
        let host = HostRoot::new(r).unwrap();
        (dir, host)
    }

    #[test]
    fn absolute_symlinks_stay_inside_the_root() {
        let (_d, host) = tree();
        let r = host.resolve("/usr/local/cuda/version.json").unwrap();
        assert_eq!(r.host_path, "/usr/local/cuda-12.6/version.json");
        assert!(r.real_path.starts_with(host.root()));
        assert_eq!(
            host.canonical("/usr/local/cuda").unwrap(),
            "/usr/local/cuda-12.6"
        );
        assert_eq!(
            host.canonical("/etc/to-root/etc/to-root/usr").unwrap(),
            "/usr"
        );
        assert_eq!(host.canonical("/../../usr/./local/..").unwrap(), "/usr");
        assert_eq!(
            host.canonical("/usr/local/etc-up/alternatives").unwrap(),
            "/etc/alternatives"
        );
        assert_eq!(
            host.resolve_no_follow("/usr/local/cuda").unwrap().host_path,
            "/usr/local/cuda"
        );
    }

    #[test]
    fn loops_and_missing_paths_are_named() {
        let (_d, host) = tree();
        let err = host.read_to_string("/etc/loop-a").unwrap_err();
        assert_eq!(err.kind(), "symlink_loop");
        assert!(err.to_string().contains("/etc/loop-a"), "{err}");
        let err = host.read_to_string("/etc/nope").unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.to_string(), "/etc/nope does not exist");
        let err = host
            .read_to_string("/usr/local/cuda/version.json/x")
            .unwrap_err();
        assert_eq!(err.kind(), "not_a_directory");
        let err = host.read_to_string("/usr/local").unwrap_err();
        assert_eq!(err.kind(), "is_a_directory");
        assert_eq!(
            err.to_string(),
            "reading /usr/local: is a directory, not a file"
        );
        assert_eq!(
            host.read_to_string("relative").unwrap_err().kind(),
            "invalid_path"
        );
    }

    #[test]
    fn limits_binary_and_hooks() {
        let (d, host) = tree();
        fs::write(d.path().join("etc/big"), vec![b'a'; 100]).unwrap();
        fs::write(d.path().join("etc/bin"), [0xff, 0xfe, 0, 1]).unwrap();
        let small = host.clone().with_max_file_size(10);
        let err = small.read_to_string("/etc/big").unwrap_err();
        assert_eq!(err.kind(), "too_large");
        assert_eq!(
            err.to_string(),
            "reading /etc/big: 100 bytes is over the 10-byte limit"
        );
        assert_eq!(
            host.read_to_string("/etc/bin").unwrap_err().kind(),
            "not_text"
        );
        assert_eq!(host.read_bytes("/etc/bin").unwrap(), vec![0xff, 0xfe, 0, 1]);

        struct Deny;
        impl ReadHook for Deny {
            fn before_read(&self, p: &str) -> Option<io::Error> {
                (p == "/etc/big").then(|| io::Error::from(io::ErrorKind::PermissionDenied))
            }
        }
        let denied = host.clone().with_hook(Arc::new(Deny));
        let err = denied.read_to_string("/etc/big").unwrap_err();
        assert_eq!(err.kind(), "io");
        assert!(
            err.to_string()
                .starts_with("reading /etc/big: permission denied"),
            "{err}"
        );
    }

    #[test]
    fn glob_expands_inside_the_root() {
        let (d, host) = tree();
        fs::create_dir_all(d.path().join("etc/conf.d")).unwrap();
        fs::write(d.path().join("etc/conf.d/b.toml"), "").unwrap();
        fs::write(d.path().join("etc/conf.d/a.toml"), "").unwrap();
        fs::write(d.path().join("etc/conf.d/.hidden.toml"), "").unwrap();
        fs::write(d.path().join("etc/conf.d/c.txt"), "").unwrap();
        assert_eq!(
            host.glob("/etc/to-root/etc/conf.d/*.toml").unwrap(),
            vec![
                "/etc/to-root/etc/conf.d/a.toml",
                "/etc/to-root/etc/conf.d/b.toml"
            ]
        );
        assert_eq!(host.glob("/nowhere/*.toml").unwrap(), Vec::<String>::new());
        assert_eq!(
            host.glob("/etc/conf.d/a.toml").unwrap(),
            vec!["/etc/conf.d/a.toml"]
        );
        assert_eq!(
            host.glob("/usr/local/cuda-*").unwrap(),
            vec!["/usr/local/cuda-12.6"]
        );
    }

    #[test]
    fn read_log_records_real_paths() {
        let (_d, host) = tree();
        let host = host.with_read_log();
        host.read_to_string("/usr/local/cuda/version.json").unwrap();
        let read = host.files_read();
        assert_eq!(read.len(), 1);
        assert!(read[0].ends_with("usr/local/cuda-12.6/version.json"));
    }
}
