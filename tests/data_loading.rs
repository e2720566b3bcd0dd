//! Loading a data folder checks which data set its files are: the published files of the data set
//! asked for are recognised raw or gzipped, another data set's files (or swapped ones) are an
//! error naming the file, unknown files (a subset) load with a warning, and the MD5s computed are
//! cached beside the data until a file changes.
//!
//! The stand-in "published" files are RFC 1321's test strings, whose MD5s the RFC publishes, and
//! "abd" (its MD5 from coreutils' `md5sum`), so no test needs the real data sets or computes a
//! checksum with the code under test.

mod common;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use flate2::Compression;
use flate2::write::GzEncoder;
use wgpu_mlp::data::verify::{
    CACHE_FILE, KnownFile, check_folder_with, content_checksums, published_files,
};
use wgpu_mlp::data::{self, DatasetKind, IDX_FILES, Origin};

use common::entries;

/// `(content, MD5)` of the stand-in MNIST files, in [`IDX_FILES`] order.
const MNIST: [(&str, &str); 4] = [
    ("a", "0cc175b9c0f1b6a831c399e269772661"),
    ("abc", "900150983cd24fb0d6963f7d28e17f72"),
    ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
    (
        "abcdefghijklmnopqrstuvwxyz",
        "c3fcd3d76192e4007dfb496cca67e13b",
    ),
];

/// `(content, MD5)` of the stand-in Fashion-MNIST files.
const FASHION: [(&str, &str); 4] = [
    ("", "d41d8cd98f00b204e9800998ecf8427e"),
    (
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "d174ab98d277d9f5a5611c2c9f419d9f",
    ),
    (
        "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
        "57edf4a22be3c955ac49da2e2107b67a",
    ),
    ("abd", "4911e516e5aa21d327512e0c8b197616"),
];

/// The stand-ins as the table of known files.
fn known() -> Vec<KnownFile> {
    let mut known = Vec::new();
    for (kind, files) in [
        (DatasetKind::Mnist, MNIST),
        (DatasetKind::FashionMnist, FASHION),
    ] {
        for (index, (content, md5)) in files.into_iter().enumerate() {
            known.push(KnownFile {
                kind,
                index,
                size: content.len() as u64,
                md5: md5.into(),
            });
        }
    }
    known
}

fn scratch(name: &str) -> PathBuf {
    common::scratch_dir("loading", name)
}

/// Writes `contents` as the four files in `dir`, gzipped as `NAME.gz` when `gzip`.
fn fill(dir: &Path, contents: [&str; 4], gzip: bool) {
    for (name, content) in IDX_FILES.iter().zip(contents) {
        if gzip {
            let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
            encoder.write_all(content.as_bytes()).unwrap();
            let path = dir.join(format!("{name}.gz"));
            std::fs::write(path, encoder.finish().unwrap()).unwrap();
        } else {
            std::fs::write(dir.join(name), content).unwrap();
        }
    }
}

fn contents(files: [(&'static str, &str); 4]) -> [&'static str; 4] {
    files.map(|(content, _)| content)
}

#[test]
fn the_published_files_are_recognised_raw_or_gzipped() {
    for gzip in [false, true] {
        let dir = scratch(&format!("published-{gzip}"));
        fill(&dir, contents(MNIST), gzip);
        let provenance = check_folder_with(&known(), DatasetKind::Mnist, &dir).unwrap();
        assert!(provenance.is_published(), "gzip {gzip}: {provenance:?}");
        assert_eq!(provenance.warning(), None);
        assert_eq!(
            provenance.to_string(),
            format!("{} (published mnist files)", dir.display())
        );
        let suffix = if gzip { ".gz" } else { "" };
        for (file, name) in provenance.files.iter().zip(IDX_FILES) {
            assert_eq!(file.path, dir.join(format!("{name}{suffix}")));
            assert_eq!(file.origin, Origin::Published);
        }
    }
}

/// The error of checking `dir` as `kind`'s files against the stand-ins.
fn refusal(dir: &Path, kind: DatasetKind) -> String {
    check_folder_with(&known(), kind, dir)
        .unwrap_err()
        .to_string()
}

#[test]
fn another_data_sets_files_are_an_error_naming_the_file_and_what_it_is() {
    let dir = scratch("other");
    fill(&dir, contents(MNIST), true);
    let error = refusal(&dir, DatasetKind::FashionMnist);
    let file = dir.join("train-images-idx3-ubyte.gz");
    let what = format!("{}: is MNIST's, not Fashion-MNIST's", file.display());
    assert!(error.contains(&what), "{error}");
    // What was hashed is cached even though the folder was refused.
    assert!(dir.join(CACHE_FILE).is_file());

    // One of Fashion-MNIST's files among MNIST's: that file is named.
    let mixed = scratch("mixed");
    let mut files = contents(MNIST);
    files[3] = FASHION[3].0;
    fill(&mixed, files, false);
    let error = refusal(&mixed, DatasetKind::Mnist);
    let file = mixed.join("t10k-labels-idx1-ubyte");
    let what = format!("{}: is Fashion-MNIST's, not MNIST's", file.display());
    assert!(error.contains(&what), "{error}");
    let which = "(it is the published Fashion-MNIST t10k-labels-idx1-ubyte)";
    assert!(error.contains(which), "{error}");
}

#[test]
fn swapped_files_are_an_error() {
    let dir = scratch("swapped");
    let mut files = contents(MNIST);
    files.swap(0, 2);
    fill(&dir, files, false);
    let error = refusal(&dir, DatasetKind::Mnist);
    assert!(
        error.contains(&format!(
            "{}: is MNIST's t10k-images-idx3-ubyte, not its train-images-idx3-ubyte",
            dir.join("train-images-idx3-ubyte").display()
        )),
        "{error}"
    );
}

#[test]
fn unknown_files_load_and_are_reported() {
    // The shipped subset: MNIST's first images, not the published files.
    let dir = scratch("subset");
    for name in IDX_FILES {
        let file = format!("{name}.gz");
        std::fs::copy(Path::new("tests/data/mnist").join(&file), dir.join(&file)).unwrap();
    }
    let (train, test, provenance) = data::load_checked(DatasetKind::Mnist, &dir).unwrap();
    assert_eq!((train.len(), test.len()), (6000, 1000));
    assert_eq!(data::load(&dir).unwrap(), (train, test));
    assert_eq!(provenance.dir, dir);
    assert!(!provenance.is_published());
    assert!(provenance.files.iter().all(|f| f.origin == Origin::Unknown));
    let names = IDX_FILES.map(|n| format!("{n}.gz")).join(", ");
    let warning = format!("not the published mnist files: {names} (a subset or another data set)");
    assert_eq!(provenance.warning().as_deref(), Some(warning.as_str()));
    assert_eq!(
        provenance.to_string(),
        format!("{} ({warning})", dir.display())
    );
    // Sizes unlike any published file's: nothing was hashed, so nothing was cached.
    assert!(!dir.join(CACHE_FILE).exists());

    // One unknown file among published ones is the only one named.
    let mixed = scratch("one-unknown");
    let mut files = contents(MNIST);
    files[1] = "abcd";
    fill(&mixed, files, false);
    let provenance = check_folder_with(&known(), DatasetKind::Mnist, &mixed).unwrap();
    assert_eq!(
        provenance.unknown_files(),
        [mixed.join("train-labels-idx1-ubyte")]
    );
    assert!(
        provenance
            .warning()
            .unwrap()
            .contains("files: train-labels-idx1-ubyte (a subset")
    );
}

#[test]
fn the_md5s_are_cached_beside_the_data_until_a_file_changes() {
    let dir = scratch("cache");
    fill(&dir, contents(MNIST), false);
    check_folder_with(&known(), DatasetKind::Mnist, &dir).unwrap();
    let mut want: Vec<String> = IDX_FILES.iter().map(|n| n.to_string()).collect();
    want.push(CACHE_FILE.into());
    want.sort();
    assert_eq!(entries(&dir), want, "the cache, and no temporary");

    // A cache that says another MD5 for an unchanged file is believed: the file is not hashed.
    let cache = dir.join(CACHE_FILE);
    let text = std::fs::read_to_string(&cache).unwrap();
    assert!(text.contains(MNIST[0].1), "{text}");
    std::fs::write(&cache, text.replace(MNIST[0].1, &"0".repeat(32))).unwrap();
    let provenance = check_folder_with(&known(), DatasetKind::Mnist, &dir).unwrap();
    assert_eq!(
        provenance.unknown_files(),
        [dir.join("train-images-idx3-ubyte")]
    );

    // A file with another modification time is hashed again.
    let touched = SystemTime::now() + Duration::from_secs(5);
    File::options()
        .write(true)
        .open(dir.join(IDX_FILES[0]))
        .unwrap()
        .set_modified(touched)
        .unwrap();
    let provenance = check_folder_with(&known(), DatasetKind::Mnist, &dir).unwrap();
    assert!(provenance.is_published(), "{provenance:?}");

    // A cache that cannot be written (here a folder in its place) does not stop the check.
    std::fs::remove_file(&cache).unwrap();
    std::fs::create_dir(&cache).unwrap();
    let provenance = check_folder_with(&known(), DatasetKind::Mnist, &dir).unwrap();
    assert!(provenance.is_published(), "{provenance:?}");
    assert!(cache.is_dir());
}

#[test]
fn the_published_table_has_the_data_sets_sizes_and_no_synthetic_files() {
    // IDX: a 4-byte magic and one u32 per dimension, then one byte per value.
    let sizes = [
        4 + 3 * 4 + 60_000 * 28 * 28,
        4 + 4 + 60_000,
        4 + 3 * 4 + 10_000 * 28 * 28,
        4 + 4 + 10_000,
    ];
    for kind in [DatasetKind::Mnist, DatasetKind::FashionMnist] {
        let table = content_checksums(kind).unwrap();
        assert_eq!(table.map(|(size, _)| size), sizes);
    }
    assert_eq!(published_files().len(), 8);
    assert!(content_checksums(DatasetKind::Synthetic).is_none());
    let error = data::load_checked(DatasetKind::Synthetic, Path::new("tests/data/mnist"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("built in"), "{error}");
}
