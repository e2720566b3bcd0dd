//! Fetches MNIST or Fashion-MNIST from the usual public mirrors and verifies each file's MD5
//! (the sums the data sets publish) before keeping it.
//!
//! A file is downloaded into a temporary file beside its destination and renamed into place only
//! once its checksum matches, so a broken or tampered download is never kept, and a file already
//! present with the right checksum is not fetched again.
//!
//! What is fetched is a [`DownloadSpec`]: file names and their MD5s. [`download`] uses the
//! published one ([`DownloadSpec::published`]); [`download_with`] takes any, which is how the
//! tests check the verification on small files of their own.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};

use crate::data::verify::hex;
pub use crate::data::verify::{checksums, md5_of};
use crate::data::{DatasetKind, IDX_FILES};
use crate::error::{Error, Result};
use crate::train::StopFlag;

/// How long one file may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// The mirrors tried in order, each a URL prefix to which the file name is appended.
pub fn default_mirrors(kind: DatasetKind) -> Vec<String> {
    let mirrors: &[&str] = match kind {
        DatasetKind::Mnist => &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ],
        DatasetKind::FashionMnist => &[
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ],
        DatasetKind::Synthetic => &[],
    };
    mirrors.iter().map(|m| m.to_string()).collect()
}

/// The files of a download and the MD5 each must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadSpec {
    /// `(file name, MD5 as 32 hex digits)`, fetched in this order. A name is a plain file name
    /// (no folder), appended to each mirror's URL and to the destination folder.
    pub files: Vec<(String, String)>,
}

impl DownloadSpec {
    /// The four `.gz` files of `kind`, in [`IDX_FILES`] order, with their published MD5s; an
    /// error for the synthetic set, which is built in.
    pub fn published(kind: DatasetKind) -> Result<DownloadSpec> {
        let sums = checksums(kind).ok_or_else(|| {
            Error::invalid(
                "dataset",
                "the synthetic set is built in and needs no download",
            )
        })?;
        Ok(DownloadSpec {
            files: IDX_FILES
                .iter()
                .zip(sums)
                .map(|(name, sum)| (format!("{name}.gz"), sum.to_string()))
                .collect(),
        })
    }

    /// Checks that there is a file, that every name is a plain file name and every MD5 32 hex
    /// digits: a name with a folder in it would write outside the destination.
    pub fn validate(&self) -> Result<()> {
        if self.files.is_empty() {
            return Err(Error::invalid("download spec", "lists no file"));
        }
        for (name, md5) in &self.files {
            let plain = !name.is_empty()
                && name != "."
                && name != ".."
                && !name.contains(['/', '\\'])
                && Path::new(name).file_name() == Some(name.as_ref());
            if !plain {
                return Err(Error::invalid(
                    "download spec",
                    format!("{name:?} is not a plain file name"),
                ));
            }
            if md5.len() != 32 || !md5.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::invalid(
                    "download spec",
                    format!("the MD5 of {name} is {md5:?}, not 32 hex digits"),
                ));
            }
        }
        Ok(())
    }
}

/// What happened to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileOutcome {
    /// Already present with the right checksum.
    Present(PathBuf),
    /// Downloaded from this URL and verified.
    Downloaded(PathBuf, String),
}

/// Downloads the four files of `kind` into `dir` (created if needed) from `mirrors`, verifying
/// each against its published MD5: [`download_with`] for [`DownloadSpec::published`], with no
/// way to stop it.
pub fn download(kind: DatasetKind, dir: &Path, mirrors: &[String]) -> Result<Vec<FileOutcome>> {
    download_with(&DownloadSpec::published(kind)?, dir, mirrors, None)
}

/// Downloads the files of `spec` into `dir` (created if needed) from `mirrors`, each a URL prefix
/// to which the file name is appended, tried in order. A file already in `dir` with the right MD5
/// is kept and not fetched. Fails with every mirror's reason if no mirror serves a file with the
/// right checksum; nothing unverified is left in `dir`. One outcome per file, in `spec` order.
///
/// Each file is written to a temporary `.NAME.tmp-PID` beside it (the naming of
/// [`crate::files`]) and renamed into place once verified; the temporaries of `NAME` that
/// processes no longer running left behind (killed mid-download) are removed first. When `stop`
/// is raised, the download ends before the next chunk of at most 64 KiB: the file in progress is
/// removed and the answer is an [`Error::Interrupted`] naming it; the files completed before stay.
pub fn download_with(
    spec: &DownloadSpec,
    dir: &Path,
    mirrors: &[String],
    stop: Option<&StopFlag>,
) -> Result<Vec<FileOutcome>> {
    spec.validate()?;
    if mirrors.is_empty() {
        return Err(Error::invalid("mirrors", "no mirror to download from"));
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::io(dir, source))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(DOWNLOAD_TIMEOUT))
        .build()
        .into();
    let mut outcomes = Vec::new();
    for (file_name, expected) in &spec.files {
        let expected = expected.to_ascii_lowercase();
        let destination = dir.join(file_name);
        if destination.is_file() && md5_of(&destination)? == expected {
            outcomes.push(FileOutcome::Present(destination));
            continue;
        }
        crate::files::remove_stale_temporaries(&destination);
        let mut failures = Vec::new();
        let mut fetched = None;
        for mirror in mirrors {
            let url = format!("{}/{file_name}", mirror.trim_end_matches('/'));
            match fetch_verified(&agent, &url, &destination, &expected, stop) {
                Ok(()) => {
                    fetched = Some(url);
                    break;
                }
                Err(Failure::Interrupted) => return Err(interrupted(&destination)),
                Err(Failure::Failed(why)) => failures.push(format!("{url}: {why}")),
            }
        }
        match fetched {
            Some(url) => outcomes.push(FileOutcome::Downloaded(destination, url)),
            None => {
                return Err(Error::Data {
                    path: destination.display().to_string(),
                    why: format!(
                        "could not be downloaded with the right checksum ({expected}): {}",
                        failures.join("; ")
                    ),
                });
            }
        }
    }
    Ok(outcomes)
}

/// The error for a download of `destination` stopped by its [`StopFlag`].
fn interrupted(destination: &Path) -> Error {
    Error::Interrupted {
        during: format!(
            "while downloading {}; the partial file was removed",
            destination.display()
        ),
    }
}

/// Why one mirror did not give a file.
enum Failure {
    /// The stop flag was raised.
    Interrupted,
    /// Anything else, in words.
    Failed(String),
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure::Failed(error.to_string())
    }
}

/// This process's temporary file for `destination`: `.NAME.tmp-PID` beside it, the naming that
/// [`crate::files::remove_stale_temporaries`] looks for.
fn temporary_path(destination: &Path) -> PathBuf {
    let name = destination
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    destination.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Downloads `url` to a temporary file and renames it to `destination` only if its MD5 matches;
/// the temporary file is removed whatever fails.
fn fetch_verified(
    agent: &ureq::Agent,
    url: &str,
    destination: &Path,
    expected: &str,
    stop: Option<&StopFlag>,
) -> std::result::Result<(), Failure> {
    let temporary = temporary_path(destination);
    let result = (|| {
        let stopped = || stop.is_some_and(StopFlag::is_raised);
        if stopped() {
            return Err(Failure::Interrupted);
        }
        let response = agent.get(url).call()?;
        let mut body = response.into_body().into_reader();
        let mut file = File::create(&temporary)?;
        let mut hasher = Md5::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            if stopped() {
                return Err(Failure::Interrupted);
            }
            let read = body.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            file.write_all(&buffer[..read])?;
        }
        file.sync_all()?;
        let actual = hex(&hasher.finalize());
        if actual != expected {
            return Err(Failure::Failed(format!(
                "checksum mismatch: got MD5 {actual}, expected {expected}; the file was not kept"
            )));
        }
        std::fs::rename(&temporary, destination)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}
