//! Putting host trees on disk, and changing them the way tools do.
//!
//! A change is written as the difference between two [`FileMap`]s: new and
//! changed files first (each written to a temporary name and renamed over
//! the old one, as package managers and `nvidia-ctk` do, so a probe never
//! reads half a file), then links, then removals, then directories left
//! empty. Temporary names end in `.sim-tmp`, which no probe reads (specs
//! end in `.yaml`/`.json`, drop-ins in `.toml`/`.conf`).

use std::io;
use std::path::{Path, PathBuf};

use super::error::FleetError;
use super::host::{Entry, FileMap};

fn io_error(path: &Path, source: io::Error) -> FleetError {
    FleetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn make_parent(path: &Path) -> Result<(), FleetError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
    }
    Ok(())
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.sim-tmp"))
}

/// Writes a whole tree into `root` (created if missing). Existing entries
/// at the same paths are replaced; nothing else is removed.
pub fn write_tree(root: &Path, files: &FileMap) -> Result<(), FleetError> {
    std::fs::create_dir_all(root).map_err(|e| io_error(root, e))?;
    for (rel, entry) in files {
        put(root, rel, entry, false)?;
    }
    Ok(())
}

/// Changes the tree at `root` from `from` to `to`, touching only what
/// differs. Returns the host paths (with a leading `/`) that changed.
pub fn sync_tree(root: &Path, from: &FileMap, to: &FileMap) -> Result<Vec<String>, FleetError> {
    let mut changed = Vec::new();
    // Files and directories first, links after, so that a link retargeted
    // to a new library never dangles.
    for pass_links in [false, true] {
        for (rel, entry) in to {
            if matches!(entry, Entry::Link(_)) != pass_links || from.get(rel) == Some(entry) {
                continue;
            }
            put(root, rel, entry, true)?;
            changed.push(format!("/{rel}"));
        }
    }
    let mut removed_dirs = Vec::new();
    for (rel, entry) in from.iter().rev() {
        if to.contains_key(rel) {
            continue;
        }
        let path = root.join(rel);
        let result = match entry {
            Entry::Dir => std::fs::remove_dir(&path),
            _ => std::fs::remove_file(&path),
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // A directory someone filled by hand stays.
            Err(_) if matches!(entry, Entry::Dir) => {}
            Err(e) => return Err(io_error(&path, e)),
        }
        changed.push(format!("/{rel}"));
        if let Some(parent) = path.parent() {
            removed_dirs.push(parent.to_path_buf());
        }
    }
    // Directories a removal left empty go too (a toolkit directory
    // without its version file would read as a broken toolkit).
    removed_dirs.sort();
    removed_dirs.dedup();
    for dir in removed_dirs.iter().rev() {
        let mut dir = dir.as_path();
        while dir != root && dir.starts_with(root) {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
            match dir.parent() {
                Some(p) => dir = p,
                None => break,
            }
        }
    }
    Ok(changed)
}

fn put(root: &Path, rel: &str, entry: &Entry, atomic: bool) -> Result<(), FleetError> {
    let path = root.join(rel);
    make_parent(&path)?;
    match entry {
        Entry::Dir => {
            if path.is_symlink() || path.is_file() {
                std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
            }
            std::fs::create_dir_all(&path).map_err(|e| io_error(&path, e))
        }
        Entry::File(bytes) => {
            if atomic {
                let tmp = temp_name(&path);
                std::fs::write(&tmp, bytes).map_err(|e| io_error(&tmp, e))?;
                std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))
            } else {
                if path.is_symlink() {
                    std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
                }
                std::fs::write(&path, bytes).map_err(|e| io_error(&path, e))
            }
        }
        Entry::Link(target) => {
            // A link is replaced by renaming a new link over it, so that it
            // always points somewhere.
            let tmp = temp_name(&path);
            match std::fs::remove_file(&tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&tmp, e)),
            }
            std::os::unix::fs::symlink(target, &tmp).map_err(|e| io_error(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))
        }
    }
}
