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

use crate::data::{DatasetKind, IDX_FILES};
use crate::error::{Error, Result};

/// How long one file may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);

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

/// The MD5 of a file, as lower-case hex.
pub fn md5_of(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut hasher = Md5::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file.read(&mut buffer).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
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
/// each against its published MD5: [`download_with`] for [`DownloadSpec::published`].
pub fn download(kind: DatasetKind, dir: &Path, mirrors: &[String]) -> Result<Vec<FileOutcome>> {
    download_with(&DownloadSpec::published(kind)?, dir, mirrors)
}

/// Downloads the files of `spec` into `dir` (created if needed) from `mirrors`, each a URL prefix
/// to which the file name is appended, tried in order. A file already in `dir` with the right MD5
/// is kept and not fetched. Fails with every mirror's reason if no mirror serves a file with the
/// right checksum; nothing unverified is left in `dir`. One outcome per file, in `spec` order.
pub fn download_with(
    spec: &DownloadSpec,
    dir: &Path,
    mirrors: &[String],
) -> Result<Vec<FileOutcome>> {
    spec.validate()?;
    if mirrors.is_empty() {
        return Err(Error::invalid("mirrors", "no mirror to download from"));
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.display().to_string(),
        source,
    })?;
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
        let mut failures = Vec::new();
        let mut fetched = None;
        for mirror in mirrors {
            let url = format!("{}/{file_name}", mirror.trim_end_matches('/'));
            match fetch_verified(&agent, &url, &destination, &expected) {
                Ok(()) => {
                    fetched = Some(url);
                    break;
                }
                Err(why) => failures.push(format!("{url}: {why}")),
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

/// Downloads `url` to a temporary file and renames it to `destination` only if its MD5 matches.
fn fetch_verified(
    agent: &ureq::Agent,
    url: &str,
    destination: &Path,
    expected: &str,
) -> std::result::Result<(), String> {
    let mut temporary = destination.as_os_str().to_owned();
    temporary.push(format!(".part-{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let result = (|| {
        let response = agent.get(url).call().map_err(|e| e.to_string())?;
        let mut body = response.into_body().into_reader();
        let mut file = File::create(&temporary).map_err(|e| e.to_string())?;
        let mut hasher = Md5::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let read = body.read(&mut buffer).map_err(|e| e.to_string())?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            file.write_all(&buffer[..read]).map_err(|e| e.to_string())?;
        }
        file.sync_all().map_err(|e| e.to_string())?;
        let actual: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if actual != expected {
            return Err(format!(
                "checksum mismatch: got MD5 {actual}, expected {expected}; the file was not kept"
            ));
        }
        std::fs::rename(&temporary, destination).map_err(|e| e.to_string())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}
