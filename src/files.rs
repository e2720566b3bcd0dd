//! Writing a user's files safely: whole or not at all, through a symbolic link to its target, and
//! never over something that is not a regular file.
//!
//! A write goes to a temporary file `.NAME.tmp-PID` beside the target, is synced, and is renamed
//! over it, so that a reader (or a crash) sees the old file or the new one, never a mixture. A
//! temporary left by a process that was killed is removed by the next write of the same file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What `path` names once symbolic links are followed: the file a write must replace.
///
/// A dangling link resolves to where it points, so that the write creates its target.
pub fn resolve_target(path: &Path) -> Result<PathBuf> {
    let mut target = path.to_path_buf();
    // Bounded, as the operating system bounds it: a loop of links is an error, not a hang.
    for _ in 0..40 {
        match std::fs::symlink_metadata(&target) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link =
                    std::fs::read_link(&target).map_err(|source| Error::io(&target, source))?;
                target = match target.parent() {
                    Some(parent) if link.is_relative() => parent.join(link),
                    _ => link,
                };
            }
            _ => return Ok(target),
        }
    }
    Err(Error::invalid(
        "output path",
        format!("{}: too many levels of symbolic links", path.display()),
    ))
}

/// Checks that a write to `path` can replace what is there: nothing yet, or a regular file (after
/// following links), in a folder that exists. Returns the resolved target.
pub fn check_writable_target(path: &Path) -> Result<PathBuf> {
    let target = resolve_target(path)?;
    if target.file_name().is_none() {
        return Err(Error::invalid(
            "output path",
            format!("{} names no file", path.display()),
        ));
    }
    match std::fs::metadata(&target) {
        Ok(meta) if !meta.is_file() => {
            return Err(Error::invalid(
                "output path",
                format!(
                    "{} is {}, not a regular file; only a regular file is ever replaced",
                    describe(path, &target),
                    kind_of(&meta)
                ),
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let folder = folder_of(&target);
            if !folder.is_dir() {
                return Err(Error::invalid(
                    "output path",
                    format!(
                        "{}: the folder {} does not exist",
                        describe(path, &target),
                        folder.display()
                    ),
                ));
            }
        }
        Err(source) => return Err(Error::io(&target, source)),
    }
    Ok(target)
}

/// Checks, before any work is done, that `path` can be written: [`check_writable_target`], and a
/// temporary file can be created (and is removed again) in its folder.
pub fn check_can_write(path: &Path) -> Result<()> {
    let target = check_writable_target(path)?;
    let probe = temporary_path(&target)?;
    File::create(&probe).map_err(|source| Error::io(&folder_of(&target), source))?;
    std::fs::remove_file(&probe).map_err(|source| Error::io(&probe, source))
}

/// Replaces the file `path` names with `bytes`, atomically: a temporary file beside the target
/// (the file at the end of any symbolic links), fsync, rename. Refuses a target that exists and is
/// not a regular file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let target = check_writable_target(path)?;
    remove_stale_temporaries(&target);
    let temporary = temporary_path(&target)?;
    let result = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &target)?;
        // Make the rename itself durable.
        if let Ok(dir) = File::open(folder_of(&target)) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(|source| Error::io(path, source))
}

/// This process's temporary file for `target`: `.NAME.tmp-PID` in the same folder, so that the
/// rename stays within one file system.
fn temporary_path(target: &Path) -> Result<PathBuf> {
    Ok(folder_of(target).join(format!(
        "{}{}",
        temporary_prefix(target)?,
        std::process::id()
    )))
}

/// `.NAME.tmp-`: what every temporary of `target` starts with.
fn temporary_prefix(target: &Path) -> Result<String> {
    let name = target.file_name().ok_or_else(|| {
        Error::invalid("output path", format!("{} names no file", target.display()))
    })?;
    Ok(format!(".{}.tmp-", name.to_string_lossy()))
}

/// Removes the temporaries of `target` left by processes that no longer run (killed mid-save).
/// Best effort: a temporary that cannot be removed is left as it is.
pub fn remove_stale_temporaries(target: &Path) {
    let Ok(prefix) = temporary_prefix(target) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(folder_of(target)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok_and(|pid| !process_is_running(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` still runs. Where this cannot be told (no `/proc`), every other
/// process is assumed to run, so that nothing another writer uses is removed.
fn process_is_running(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// The folder `path` is in (`.` for a bare name).
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `path`, and the target it leads to when that differs.
fn describe(path: &Path, target: &Path) -> String {
    if path == target {
        path.display().to_string()
    } else {
        format!("{} (a link to {})", path.display(), target.display())
    }
}

/// What kind of thing a non-regular file is, in words.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}
