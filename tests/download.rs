//! Downloads verified against checksums, from a local server: a corrupted file is never kept, a
//! good mirror after a bad one is used, a file already present is not fetched again, and the
//! published MNIST and Fashion-MNIST checksums stay the default.
//!
//! The fixture files are the RFC 1321 test strings, whose MD5s the RFC publishes, so no test
//! needs the data sets themselves or computes a checksum with the code under test.
//!
//! A download stopped by its flag, from a mirror that sends slowly, leaves nothing behind, and the
//! temporaries of killed downloads are removed by the next download of the same file.

// The download module exists only with the `download` feature.
#![cfg(feature = "download")]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{entries, serve, serve_paced};
use wgpu_mlp::data::DatasetKind;
use wgpu_mlp::data::download::{DownloadSpec, FileOutcome, download, download_with};
use wgpu_mlp::train::StopFlag;

/// `(file name, contents, MD5)`: RFC 1321's test suite, and one million "a"s (more than one read
/// buffer), whose MD5 is the one published with the other test vectors.
fn fixtures() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    vec![
        ("a.txt", b"a".to_vec(), "0cc175b9c0f1b6a831c399e269772661"),
        (
            "abc.txt",
            b"abc".to_vec(),
            "900150983cd24fb0d6963f7d28e17f72",
        ),
        (
            "digest.txt",
            b"message digest".to_vec(),
            "f96b697d7cb7938d525a2f31aaf161d0",
        ),
        (
            "million.txt",
            vec![b'a'; 1_000_000],
            "7707d6ae4e027c70eea2a935c2296f21",
        ),
    ]
}

fn fixture_spec() -> DownloadSpec {
    DownloadSpec {
        files: fixtures()
            .into_iter()
            .map(|(name, _, md5)| (name.to_string(), md5.to_string()))
            .collect(),
    }
}

/// A server with every fixture under `/good/` and a copy with one byte flipped under `/bad/`.
fn serve_fixtures() -> common::Server {
    let mut files = Vec::new();
    for (name, bytes, _) in fixtures() {
        let mut corrupted = bytes.clone();
        let middle = corrupted.len() / 2;
        corrupted[middle] ^= 0xff;
        files.push((format!("/good/{name}"), bytes));
        files.push((format!("/bad/{name}"), corrupted));
    }
    serve(files)
}

fn scratch(name: &str) -> PathBuf {
    common::scratch_dir("download", name)
}

#[test]
fn a_corrupted_mirror_is_an_error_naming_the_mismatch_and_nothing_is_kept() {
    let server = serve_fixtures();
    let dir = scratch("bad");
    let error = download_with(
        &fixture_spec(),
        &dir,
        &[format!("{}/bad/", server.url)],
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("checksum mismatch"), "{error}");
    assert!(error.contains("a.txt"), "names the file: {error}");
    assert!(
        error.contains("0cc175b9c0f1b6a831c399e269772661"),
        "names the expected MD5: {error}"
    );
    assert!(entries(&dir).is_empty(), "kept: {:?}", entries(&dir));
}

#[test]
fn a_good_mirror_after_a_bad_one_keeps_every_verified_file_and_a_second_run_fetches_nothing() {
    let server = serve_fixtures();
    let dir = scratch("good");
    let (bad, good) = (
        format!("{}/bad/", server.url),
        format!("{}/good", server.url),
    );
    let mut spec = fixture_spec();
    // Upper-case hex digits are the same checksum.
    spec.files[1].1 = spec.files[1].1.to_ascii_uppercase();
    let outcomes = download_with(&spec, &dir, &[bad.clone(), good], None).unwrap();
    assert_eq!(outcomes.len(), 4);
    for ((name, bytes, _), outcome) in fixtures().into_iter().zip(&outcomes) {
        let path = dir.join(name);
        assert_eq!(
            *outcome,
            FileOutcome::Downloaded(path.clone(), format!("{}/good/{name}", server.url))
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}");
    }
    assert_eq!(
        entries(&dir),
        ["a.txt", "abc.txt", "digest.txt", "million.txt"],
        "temporary files left behind"
    );
    // Each file: the bad mirror, then the good one.
    assert_eq!(server.requests(), 8);

    // Again, with only the bad mirror: every file present and verified, nothing requested.
    let again = download_with(&spec, &dir, &[bad], None).unwrap();
    let present: Vec<FileOutcome> = fixtures()
        .into_iter()
        .map(|(name, _, _)| FileOutcome::Present(dir.join(name)))
        .collect();
    assert_eq!(again, present);
    assert_eq!(server.requests(), 8, "a present file was fetched again");
}

#[test]
fn a_present_file_with_the_wrong_checksum_is_replaced() {
    let server = serve_fixtures();
    let dir = scratch("replace");
    std::fs::write(dir.join("abc.txt"), b"abd").unwrap();
    let spec = DownloadSpec {
        files: vec![("abc.txt".into(), "900150983cd24fb0d6963f7d28e17f72".into())],
    };
    let outcomes = download_with(&spec, &dir, &[format!("{}/good/", server.url)], None).unwrap();
    assert!(
        matches!(&outcomes[..], [FileOutcome::Downloaded(..)]),
        "{outcomes:?}"
    );
    assert_eq!(std::fs::read(dir.join("abc.txt")).unwrap(), b"abc");
}

#[test]
fn the_published_checksums_are_the_default() {
    // As the data sets publish them (MNIST's home page; Fashion-MNIST's README).
    let published = |names_and_sums: [(&str, &str); 4]| DownloadSpec {
        files: names_and_sums
            .iter()
            .map(|(name, md5)| (name.to_string(), md5.to_string()))
            .collect(),
    };
    assert_eq!(
        DownloadSpec::published(DatasetKind::Mnist).unwrap(),
        published([
            (
                "train-images-idx3-ubyte.gz",
                "f68b3c2dcbeaaa9fbdd348bbdeb94873"
            ),
            (
                "train-labels-idx1-ubyte.gz",
                "d53e105ee54ea40749a09fcbcd1e9432"
            ),
            (
                "t10k-images-idx3-ubyte.gz",
                "9fb629c4189551a2d022fa330f9573f3"
            ),
            (
                "t10k-labels-idx1-ubyte.gz",
                "ec29112dd5afa0611ce80d1b7f02629c"
            ),
        ])
    );
    assert_eq!(
        DownloadSpec::published(DatasetKind::FashionMnist).unwrap(),
        published([
            (
                "train-images-idx3-ubyte.gz",
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
            ),
            (
                "train-labels-idx1-ubyte.gz",
                "25c81989df183df01b3e8a0aad5dffbe"
            ),
            (
                "t10k-images-idx3-ubyte.gz",
                "bef4ecab320f06d8554ea6380940ec79"
            ),
            (
                "t10k-labels-idx1-ubyte.gz",
                "bb300cfdad3c16e7a12a480ee83cd310"
            ),
        ])
    );
    let synthetic = DownloadSpec::published(DatasetKind::Synthetic).unwrap_err();
    assert!(synthetic.to_string().contains("needs no download"));

    // `download` checks against them: a file of the right name but other bytes is refused.
    let server = serve(vec![(
        "/train-images-idx3-ubyte.gz".into(),
        b"abc".to_vec(),
    )]);
    let dir = scratch("published");
    let error = download(DatasetKind::Mnist, &dir, std::slice::from_ref(&server.url))
        .unwrap_err()
        .to_string();
    assert!(error.contains("checksum mismatch"), "{error}");
    assert!(
        error.contains(
            "got MD5 900150983cd24fb0d6963f7d28e17f72, expected f68b3c2dcbeaaa9fbdd348bbdeb94873"
        ),
        "{error}"
    );
    assert!(entries(&dir).is_empty());
}

#[test]
fn bad_specs_and_missing_mirrors_are_errors_that_say_why() {
    let server = serve_fixtures();
    let dir = scratch("errors");
    let mirror = [format!("{}/good/", server.url)];
    let error = |spec: DownloadSpec, mirrors: &[String]| {
        download_with(&spec, &dir, mirrors, None)
            .unwrap_err()
            .to_string()
    };
    let one = |name: &str, md5: &str| DownloadSpec {
        files: vec![(name.into(), md5.into())],
    };
    let md5 = "0cc175b9c0f1b6a831c399e269772661";

    assert!(error(DownloadSpec { files: vec![] }, &mirror).contains("lists no file"));
    for name in [
        "",
        ".",
        "..",
        "../a.txt",
        "sub/a.txt",
        "sub\\a.txt",
        "/a.txt",
    ] {
        let message = error(one(name, md5), &mirror);
        assert!(
            message.contains("not a plain file name"),
            "{name:?}: {message}"
        );
    }
    for sum in ["", "0cc175b9", "zz c175b9c0f1b6a831c399e26977266"] {
        let message = error(one("a.txt", sum), &mirror);
        assert!(message.contains("not 32 hex digits"), "{sum:?}: {message}");
    }
    assert!(error(one("a.txt", md5), &[]).contains("no mirror"));
    let missing = error(one("missing.txt", md5), &mirror);
    assert!(missing.contains("404"), "{missing}");
    assert!(entries(&dir).is_empty(), "kept: {:?}", entries(&dir));
    assert_eq!(server.requests(), 1, "only the missing file was asked for");
}

/// The spec of the one-million-"a" fixture alone.
fn million_spec() -> DownloadSpec {
    let (name, _, md5) = fixtures().pop().unwrap();
    DownloadSpec {
        files: vec![(name.into(), md5.into())],
    }
}

#[test]
fn a_stopped_download_removes_its_partial_file_and_says_it_was_interrupted() {
    // One million bytes, 4 KiB every 20 ms: five seconds if nothing stops it.
    let (name, bytes, _) = fixtures().pop().unwrap();
    let server = serve_paced(
        vec![(format!("/{name}"), bytes)],
        4096,
        Duration::from_millis(20),
    );
    let dir = scratch("stopped");
    let stop = StopFlag::default();
    let raiser = {
        let (stop, dir) = (stop.clone(), dir.clone());
        std::thread::spawn(move || {
            // Raised once the partial file exists, so the stop lands mid-body.
            let deadline = Instant::now() + Duration::from_secs(10);
            while entries(&dir).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            let partial = entries(&dir);
            stop.raise();
            partial
        })
    };
    let started = Instant::now();
    let error = download_with(
        &million_spec(),
        &dir,
        std::slice::from_ref(&server.url),
        Some(&stop),
    )
    .unwrap_err();
    let partial = raiser.join().unwrap();
    assert_eq!(
        partial,
        [format!(".{name}.tmp-{}", std::process::id())],
        "the partial file, while downloading"
    );
    let message = error.to_string();
    assert!(message.contains("interrupted"), "{message}");
    assert!(
        message.contains(&dir.join(name).display().to_string()),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}: the stop was not heeded between chunks",
        started.elapsed()
    );
    assert!(entries(&dir).is_empty(), "left: {:?}", entries(&dir));

    // A flag raised before the start fetches nothing.
    let requests = server.requests();
    let error = download_with(
        &million_spec(),
        &dir,
        std::slice::from_ref(&server.url),
        Some(&stop),
    );
    assert!(error.is_err());
    assert_eq!(server.requests(), requests);
    assert!(entries(&dir).is_empty());
}

#[cfg(target_os = "linux")]
/// A process that has ended (its id is free) and one that runs until killed.
fn dead_and_live_processes() -> (u32, Child) {
    let mut ended = Command::new("true").spawn().unwrap();
    let dead = ended.id();
    ended.wait().unwrap();
    (dead, Command::new("sleep").arg("60").spawn().unwrap())
}

// Whether a process runs is read from /proc; elsewhere every other process's file is kept.
#[cfg(target_os = "linux")]
#[test]
fn the_temporaries_of_killed_downloads_are_removed_and_running_ones_kept() {
    let server = serve_fixtures();
    let dir = scratch("stale");
    let (dead, mut live) = dead_and_live_processes();
    let stale = format!(".a.txt.tmp-{dead}");
    let running = format!(".a.txt.tmp-{}", live.id());
    let other_file = format!(".abc.txt.tmp-{dead}");
    for name in [&stale, &running, &other_file] {
        std::fs::write(dir.join(name), b"partial").unwrap();
    }
    let spec = DownloadSpec {
        files: vec![("a.txt".into(), "0cc175b9c0f1b6a831c399e269772661".into())],
    };
    let outcome = download_with(&spec, &dir, &[format!("{}/good/", server.url)], None);
    live.kill().unwrap();
    live.wait().unwrap();
    outcome.unwrap();
    let mut want = vec!["a.txt".to_string(), other_file, running];
    want.sort();
    // Only a.txt's temporaries are its download's business, and only a dead process's.
    assert_eq!(entries(&dir), want);
}
