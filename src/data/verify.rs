//! Which data set a folder's IDX files really are: each file is identified by the MD5 of its IDX
//! content (decompressed when it is gzip), compared with the published files of MNIST and
//! Fashion-MNIST.
//!
//! The content, not the `.gz` file, is what is hashed, so that raw files, the published `.gz`
//! files and a `.gz` recompressed by someone else are all recognised alike. A file whose content
//! size is not one of the published sizes cannot be a published file and is not hashed at all, so
//! a subset (like the tests' `tests/data/mnist`) costs nothing. A file that is hashed has its MD5
//! remembered in [`CACHE_FILE`] beside it, keyed by name, size and modification time, so that the
//! full data sets are hashed once, not at every run; a folder that cannot be written to is simply
//! hashed again next time.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use md5::{Digest, Md5};

use super::idx::{MAX_IDX_BYTES, open_content};
use super::{DatasetKind, IDX_FILES, idx_file};
use crate::error::{Error, Result};

/// The cache of content MD5s written into a data folder.
pub const CACHE_FILE: &str = ".wgpu-mlp-verified";

/// The first line of [`CACHE_FILE`]; a file without it is ignored and rewritten.
const CACHE_HEADER: &str = "# wgpu-mlp: MD5 of each IDX file's content; MD5 SIZE MTIME_NS NAME";

/// The published MD5 of each `.gz` file, in [`IDX_FILES`] order.
pub fn checksums(kind: DatasetKind) -> Option<[&'static str; 4]> {
    match kind {
        DatasetKind::Mnist => Some([
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ]),
        DatasetKind::FashionMnist => Some([
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ]),
        DatasetKind::Synthetic => None,
    }
}

/// The size and MD5 of the decompressed content of each published `.gz` file (those with the
/// [`checksums`]), in [`IDX_FILES`] order.
pub fn content_checksums(kind: DatasetKind) -> Option<[(u64, &'static str); 4]> {
    match kind {
        DatasetKind::Mnist => Some([
            (47_040_016, "6bbc9ace898e44ae57da46a324031adb"),
            (60_008, "a25bea736e30d166cdddb491f175f624"),
            (7_840_016, "2646ac647ad5339dbf082846283269ea"),
            (10_008, "27ae3e4e09519cfbb04c329615203637"),
        ]),
        DatasetKind::FashionMnist => Some([
            (47_040_016, "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
            (60_008, "9018921c3c673c538a1fc5bad174d6f9"),
            (7_840_016, "8181f5470baa50b63fa0f6fddb340f0a"),
            (10_008, "15d484375f8d13e6eb1aabb0c3f46965"),
        ]),
        DatasetKind::Synthetic => None,
    }
}

/// One file a data set is known by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownFile {
    /// The data set it belongs to.
    pub kind: DatasetKind,
    /// Which of [`IDX_FILES`] it is.
    pub index: usize,
    /// The size of its IDX content in bytes (decompressed).
    pub size: u64,
    /// The MD5 of its IDX content, 32 lower-case hex digits.
    pub md5: String,
}

/// The published files of MNIST and Fashion-MNIST, from [`content_checksums`].
pub fn published_files() -> Vec<KnownFile> {
    let mut known = Vec::new();
    for kind in [DatasetKind::Mnist, DatasetKind::FashionMnist] {
        for (index, (size, md5)) in content_checksums(kind).into_iter().flatten().enumerate() {
            known.push(KnownFile {
                kind,
                index,
                size,
                md5: md5.to_string(),
            });
        }
    }
    known
}

/// Where a loaded file comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The published file of the data set asked for, in its place.
    Published,
    /// No known file: a subset, a user's own IDX files, or a published file altered.
    Unknown,
}

/// One of the four files loaded and where it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedFile {
    /// The file (`.gz` or raw).
    pub path: PathBuf,
    /// Whether it is the published file.
    pub origin: Origin,
}

/// What a data folder holds: the answer of [`check_folder`] and [`super::load_checked`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// The data set asked for.
    pub kind: DatasetKind,
    /// The folder the files were loaded from.
    pub dir: PathBuf,
    /// The four files, in [`IDX_FILES`] order.
    pub files: Vec<CheckedFile>,
}

impl Provenance {
    /// Whether every file is the published one.
    pub fn is_published(&self) -> bool {
        self.files.iter().all(|f| f.origin == Origin::Published)
    }

    /// The files that are not the published ones.
    pub fn unknown_files(&self) -> Vec<&Path> {
        self.files
            .iter()
            .filter(|f| f.origin == Origin::Unknown)
            .map(|f| f.path.as_path())
            .collect()
    }

    /// `None` when every file is published, else `not the published mnist files: NAMES (a subset
    /// or another data set)`, NAMES being the unknown files' names.
    pub fn warning(&self) -> Option<String> {
        let unknown = self.unknown_files();
        if unknown.is_empty() {
            return None;
        }
        let names: Vec<String> = unknown
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or(p.as_os_str())
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        Some(format!(
            "not the published {} files: {} (a subset or another data set)",
            self.kind.name(),
            names.join(", ")
        ))
    }
}

/// `FOLDER (published mnist files)`, or `FOLDER (` [`Provenance::warning`] `)`.
impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.warning() {
            None => write!(
                f,
                "{} (published {} files)",
                self.dir.display(),
                self.kind.name()
            ),
            Some(warning) => write!(f, "{} ({warning})", self.dir.display()),
        }
    }
}

/// Checks the four files of `kind` in `dir` against the published files: [`check_folder_with`]
/// for [`published_files`].
pub fn check_folder(kind: DatasetKind, dir: &Path) -> Result<Provenance> {
    check_folder_with(&published_files(), kind, dir)
}

/// Identifies each of the four files of `kind` in `dir` (`.gz` or raw) among `known`.
///
/// A file that is `kind`'s own in its own place is [`Origin::Published`]; one that is no known
/// file is [`Origin::Unknown`]; one that is another data set's file, or `kind`'s but another of
/// the four (swapped names), is an error naming the file and what it is. A file that cannot be
/// read or decompressed counts as unknown here and is left for the loader to report. MD5s
/// computed are remembered in `dir/`[`CACHE_FILE`] when the folder can be written.
pub fn check_folder_with(known: &[KnownFile], kind: DatasetKind, dir: &Path) -> Result<Provenance> {
    if kind == DatasetKind::Synthetic {
        return Err(Error::invalid(
            "dataset",
            "the synthetic set is built in and has no files to check",
        ));
    }
    let mut cache = Cache::read(dir);
    // The cache is written whatever the verdict, so that a refusal is as quick the second time.
    let files = check_files(known, kind, dir, &mut cache);
    cache.write(dir);
    Ok(Provenance {
        kind,
        dir: dir.to_path_buf(),
        files: files?,
    })
}

/// [`check_folder_with`]'s verdict on each file, with the MD5s computed added to `cache`.
fn check_files(
    known: &[KnownFile],
    kind: DatasetKind,
    dir: &Path,
    cache: &mut Cache,
) -> Result<Vec<CheckedFile>> {
    let mut files = Vec::new();
    for (index, name) in IDX_FILES.iter().enumerate() {
        let path = idx_file(dir, name).ok_or_else(|| Error::Data {
            path: dir.join(name).display().to_string(),
            why: "not found (.gz or raw)".into(),
        })?;
        let origin = match identify(known, &path, cache) {
            None => Origin::Unknown,
            Some(file) if file.kind == kind && file.index == index => Origin::Published,
            Some(file) => return Err(mismatch(&path, kind, index, file)),
        };
        files.push(CheckedFile { path, origin });
    }
    Ok(files)
}

/// The error for `path`, expected to be `kind`'s file `index`, which is `found`.
fn mismatch(path: &Path, kind: DatasetKind, index: usize, found: &KnownFile) -> Error {
    let why = if found.kind == kind {
        format!(
            "is {}'s {}, not its {}: the files are swapped or misnamed",
            title(kind),
            IDX_FILES[found.index],
            IDX_FILES[index]
        )
    } else {
        format!(
            "is {}'s, not {}'s (it is the published {} {}): this folder holds the other data set",
            title(found.kind),
            title(kind),
            title(found.kind),
            IDX_FILES[found.index]
        )
    };
    Error::Data {
        path: path.display().to_string(),
        why,
    }
}

/// How the data sets spell their names.
fn title(kind: DatasetKind) -> &'static str {
    match kind {
        DatasetKind::Mnist => "MNIST",
        DatasetKind::FashionMnist => "Fashion-MNIST",
        DatasetKind::Synthetic => "the synthetic set",
    }
}

/// The known file `path` holds, if any; `None` also when it cannot be read.
fn identify<'a>(known: &'a [KnownFile], path: &Path, cache: &mut Cache) -> Option<&'a KnownFile> {
    let size = open_content(path).ok()?.size?;
    if !known.iter().any(|k| k.size == size) {
        return None;
    }
    let name = path.file_name()?.to_string_lossy().into_owned();
    let stamp = Stamp::of(path);
    let md5 = match stamp.and_then(|s| cache.lookup(&name, s)) {
        Some(md5) => md5,
        None => {
            let md5 = content_md5(path).ok()?;
            if let Some(stamp) = stamp {
                cache.insert(name, stamp, md5.clone());
            }
            md5
        }
    };
    known
        .iter()
        .find(|k| k.size == size && k.md5.eq_ignore_ascii_case(&md5))
}

/// The MD5 of `path`'s content, decompressed when it is gzip; at most [`MAX_IDX_BYTES`] and a
/// header are read, which is more than any file the loader accepts.
fn content_md5(path: &Path) -> std::io::Result<String> {
    md5_of_reader(open_content(path)?.reader.take(MAX_IDX_BYTES + 64))
}

/// The MD5 of everything `reader` yields, as lower-case hex.
pub(crate) fn md5_of_reader(mut reader: impl Read) -> std::io::Result<String> {
    let mut hasher = Md5::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buffer[..read]);
    }
}

/// Bytes as lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The MD5 of a file's bytes (not decompressed), as lower-case hex.
pub fn md5_of(path: &Path) -> Result<String> {
    let io = |source| Error::io(path, source);
    md5_of_reader(File::open(path).map_err(io)?).map_err(io)
}

/// A file's size and modification time: what says it has not changed since it was hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    size: u64,
    modified_ns: u128,
}

impl Stamp {
    /// `None` where the file system keeps no modification time.
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        Some(Stamp {
            size: meta.len(),
            modified_ns: modified.as_nanos(),
        })
    }
}

/// The MD5s remembered in a folder's [`CACHE_FILE`], by file name.
#[derive(Default)]
struct Cache {
    entries: BTreeMap<String, (Stamp, String)>,
    changed: bool,
}

impl Cache {
    /// The folder's cache; empty when there is none or it is not one this version wrote.
    fn read(dir: &Path) -> Cache {
        let mut cache = Cache::default();
        let Ok(text) = std::fs::read_to_string(dir.join(CACHE_FILE)) else {
            return cache;
        };
        let mut lines = text.lines();
        if lines.next() != Some(CACHE_HEADER) {
            return cache;
        }
        for line in lines {
            let mut fields = line.splitn(4, ' ');
            let (Some(md5), Some(size), Some(modified), Some(name)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let (Ok(size), Ok(modified_ns)) = (size.parse(), modified.parse()) else {
                continue;
            };
            let stamp = Stamp { size, modified_ns };
            cache
                .entries
                .insert(name.to_string(), (stamp, md5.to_string()));
        }
        cache
    }

    /// The MD5 remembered for `name` if the file still has `stamp`.
    fn lookup(&self, name: &str, stamp: Stamp) -> Option<String> {
        match self.entries.get(name) {
            Some((remembered, md5)) if *remembered == stamp => Some(md5.clone()),
            _ => None,
        }
    }

    fn insert(&mut self, name: String, stamp: Stamp, md5: String) {
        self.entries.insert(name, (stamp, md5));
        self.changed = true;
    }

    /// Writes the cache if anything was added. Best effort: a folder that cannot be written to
    /// (read-only, another user's) only means hashing again next time.
    fn write(&self, dir: &Path) {
        if !self.changed {
            return;
        }
        let mut text = format!("{CACHE_HEADER}\n");
        for (name, (stamp, md5)) in &self.entries {
            text.push_str(&format!(
                "{md5} {} {} {name}\n",
                stamp.size, stamp.modified_ns
            ));
        }
        let _ = crate::files::write_atomically(&dir.join(CACHE_FILE), text.as_bytes());
    }
}
