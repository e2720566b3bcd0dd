//! Data sets: MNIST and Fashion-MNIST from IDX files, and a built-in synthetic set of the same
//! shape that needs no download.
//!
//! A [`Dataset`] (in [`dataset`]) keeps images as bytes, as the files do.
//!
//! A user's own data loads from `.npz`, `.csv` or IDX files through [`files`]; [`scaling`]
//! standardizes float features and regression targets.

pub mod dataset;
#[cfg(feature = "download")]
pub mod download;
pub mod files;
pub mod idx;
#[cfg(feature = "images")]
pub mod image;
pub mod npz;
pub mod scaling;
pub mod synthetic;
pub mod table;
pub mod verify;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub use dataset::{Dataset, Features, Targets};
pub use files::{LoadOptions, Task, load_file};
pub use scaling::{InputScaling, Standardization};
pub use verify::{CheckedFile, Origin, Provenance};

/// The data sets the trainer knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum DatasetKind {
    /// Handwritten digits.
    Mnist,
    /// Zalando's clothing images.
    FashionMnist,
    /// The built-in synthetic set ([`synthetic::generate`]).
    Synthetic,
}

impl DatasetKind {
    /// `mnist`, `fashion-mnist` or `synthetic`.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Synthetic => "synthetic",
        }
    }

    /// The data set [`DatasetKind::name`] names.
    pub fn from_name(name: &str) -> Option<DatasetKind> {
        [
            DatasetKind::Mnist,
            DatasetKind::FashionMnist,
            DatasetKind::Synthetic,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }
}

/// The four files of an MNIST-style data set, in the order train images, train labels, test
/// images, test labels.
pub const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// The folders searched, in order, for `kind`'s files when no folder is given:
/// [`data_dirs_under`] the root `$WGPU_MLP_DATA` names, if set.
pub fn default_data_dirs(kind: DatasetKind) -> Vec<PathBuf> {
    let root = std::env::var_os("WGPU_MLP_DATA").map(PathBuf::from);
    data_dirs_under(kind, root.as_deref())
}

/// The folders searched, in order, for `kind`'s files under `root` (`$WGPU_MLP_DATA` for
/// [`default_data_dirs`]): `<root>/<dataset>`, then `<root>` itself, then `./data/<dataset>`, and
/// for Fashion-MNIST Debian's `/usr/share/datasets/fashion-mnist` (package
/// `dataset-fashion-mnist`).
///
/// The sub-folder named after the data set comes before the root because it says which data set
/// it holds, while files in the root itself could be any of them: with MNIST's files in `~/data`
/// and Fashion-MNIST's in `~/data/fashion-mnist`, `--dataset fashion-mnist` must not find MNIST.
/// A root that is itself the data set's folder (`…/mnist`) has no such sub-folder and is found
/// second.
pub fn data_dirs_under(kind: DatasetKind, root: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(root) = root {
        dirs.push(root.join(kind.name()));
        dirs.push(root.to_path_buf());
    }
    dirs.push(Path::new("data").join(kind.name()));
    if kind == DatasetKind::FashionMnist {
        dirs.push(PathBuf::from("/usr/share/datasets/fashion-mnist"));
    }
    dirs
}

/// `dir/name.gz` if it exists, else `dir/name`.
pub(crate) fn idx_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(format!("{name}.gz")), dir.join(name)]
        .into_iter()
        .find(|p| p.is_file())
}

/// The folder holding all four files of `kind`: `explicit` if given, else the first of
/// [`default_data_dirs`] that has them.
pub fn find_data_dir(kind: DatasetKind, explicit: Option<&Path>) -> Result<PathBuf> {
    let candidates = match explicit {
        Some(dir) => vec![dir.to_path_buf()],
        None => default_data_dirs(kind),
    };
    first_dir_holding(kind, &candidates)
}

/// The first of `candidates` that holds all four [`IDX_FILES`] (`.gz` or raw); an error naming
/// every folder searched if none does.
pub fn first_dir_holding(kind: DatasetKind, candidates: &[PathBuf]) -> Result<PathBuf> {
    for dir in candidates {
        if IDX_FILES.iter().all(|name| idx_file(dir, name).is_some()) {
            return Ok(dir.clone());
        }
    }
    let searched: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
    Err(Error::invalid(
        "data folder",
        format!(
            "no folder holds the {} files {} (.gz or raw); searched: {}. Run `wgpu-mlp download --dataset {}` or pass --data DIR",
            kind.name(),
            IDX_FILES.join(", "),
            searched.join(", "),
            kind.name()
        ),
    ))
}

/// Reads an image file and a label file into a [`Dataset`] of 10 classes, checking that they
/// agree.
pub fn load_idx_pair(images_path: &Path, labels_path: &Path) -> Result<Dataset> {
    let images = idx::read_images(images_path)?;
    let labels = idx::read_labels(labels_path)?;
    digits_dataset(images, labels, [images_path, labels_path])
}

/// [`load_idx_pair`] for files already in memory (a browser's), named `paths` in errors.
pub fn idx_pair_from_bytes([images, labels]: [&[u8]; 2], paths: [&Path; 2]) -> Result<Dataset> {
    let images = idx::images_of(idx::parse_bytes(images, paths[0])?, paths[0])?;
    let labels = idx::labels_of(idx::parse_bytes(labels, paths[1])?, paths[1])?;
    digits_dataset(images, labels, paths)
}

/// An image set and its labels as a data set of 10 classes, checking that they agree.
fn digits_dataset(
    (count, rows, cols, images): (usize, usize, usize, Vec<u8>),
    labels: Vec<u8>,
    [images_path, labels_path]: [&Path; 2],
) -> Result<Dataset> {
    if labels.len() != count {
        return Err(Error::Data {
            path: labels_path.display().to_string(),
            why: format!(
                "has {} labels but {} has {count} images",
                labels.len(),
                images_path.display()
            ),
        });
    }
    if let Some(i) = labels.iter().position(|&l| l >= 10) {
        return Err(Error::Data {
            path: labels_path.display().to_string(),
            why: format!("label {} of sample {i} is outside 0–9", labels[i]),
        });
    }
    let labels = labels.into_iter().map(u32::from).collect();
    Dataset::images(images, (rows, cols), labels, 10)
}

/// Checks that the test images have the training images' shape; `place` names where they are.
pub fn check_image_shapes(train: &Dataset, test: &Dataset, place: &str) -> Result<()> {
    if let (Some((rows, cols)), Some((train_rows, train_cols))) =
        (test.image_shape, train.image_shape)
        && (rows, cols) != (train_rows, train_cols)
    {
        return Err(Error::Data {
            path: place.to_string(),
            why: format!(
                "test images are {rows}×{cols} but training images {train_rows}×{train_cols}"
            ),
        });
    }
    Ok(())
}

/// The training and test sets of `kind` in `dir`, after checking that each file is `kind`'s
/// ([`verify::check_folder`]): an error naming the file if one is another data set's (MNIST's
/// files asked for as Fashion-MNIST), and a [`Provenance`] saying which files are the published
/// ones and which are not (a subset, or a user's own files), for the caller to report.
pub fn load_checked(kind: DatasetKind, dir: &Path) -> Result<(Dataset, Dataset, Provenance)> {
    let provenance = verify::check_folder(kind, dir)?;
    let (train, test) = load(dir)?;
    Ok((train, test, provenance))
}

/// The training and test sets in `dir` (see [`find_data_dir`]), whatever data set the files are;
/// [`load_checked`] also checks which they are.
pub fn load(dir: &Path) -> Result<(Dataset, Dataset)> {
    let path = |name: &str| {
        idx_file(dir, name).ok_or_else(|| Error::Data {
            path: dir.join(name).display().to_string(),
            why: "not found (.gz or raw)".into(),
        })
    };
    let train = load_idx_pair(&path(IDX_FILES[0])?, &path(IDX_FILES[1])?)?;
    let test = load_idx_pair(&path(IDX_FILES[2])?, &path(IDX_FILES[3])?)?;
    check_image_shapes(&train, &test, &dir.display().to_string())?;
    Ok((train, test))
}
