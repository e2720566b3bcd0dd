//! Data sets: MNIST and Fashion-MNIST from IDX files, and a built-in synthetic set of the same
//! shape that needs no download.
//!
//! A [`Dataset`] keeps images as bytes, as the files do: the GPU trainer uploads them as they are
//! (60,000 × 784 f32 would not fit a 128 MiB binding) and converts to `[0, 1]` in the kernel.

#[cfg(feature = "download")]
pub mod download;
pub mod idx;
#[cfg(feature = "images")]
pub mod image;
pub mod synthetic;
pub mod verify;

use std::path::{Path, PathBuf};

use ndarray::Array2;

use crate::error::{Error, Result};

pub use verify::{CheckedFile, Origin, Provenance};

/// Labelled images stored as bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// `count × rows × cols` pixels, row-major, 0 = black, 255 = white.
    pub images: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// Number of classes; every label is below it.
    pub classes: usize,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image: the model's input width.
    pub fn inputs(&self) -> usize {
        self.rows * self.cols
    }

    /// The samples at `indices` as `x: (n, inputs)` scaled to `[0, 1]` and one-hot
    /// `y: (n, classes)`. Indices must be below [`Dataset::len`].
    pub fn batch(&self, indices: &[usize]) -> (Array2<f32>, Array2<f32>) {
        let inputs = self.inputs();
        let mut x = Array2::zeros((indices.len(), inputs));
        let mut y = Array2::zeros((indices.len(), self.classes));
        for (row, &sample) in indices.iter().enumerate() {
            let pixels = &self.images[sample * inputs..(sample + 1) * inputs];
            for (value, &pixel) in x.row_mut(row).iter_mut().zip(pixels) {
                *value = f32::from(pixel) / 255.0;
            }
            y[[row, self.labels[sample] as usize]] = 1.0;
        }
        (x, y)
    }

    /// The first `count` samples (all of them if there are fewer).
    pub fn take(&self, count: usize) -> Dataset {
        let count = count.min(self.len());
        Dataset {
            images: self.images[..count * self.inputs()].to_vec(),
            labels: self.labels[..count].to_vec(),
            ..self.clone()
        }
    }

    /// Checks that sizes agree and every label is below `classes`.
    pub fn validate(&self, what: &str) -> Result<()> {
        let invalid = |why: String| Error::invalid(what, why);
        if self.labels.is_empty() {
            return Err(invalid("has no samples".into()));
        }
        if self.images.len() != self.labels.len() * self.inputs() {
            return Err(invalid(format!(
                "has {} image bytes for {} labels of {}×{} images",
                self.images.len(),
                self.labels.len(),
                self.rows,
                self.cols
            )));
        }
        if let Some(i) = self.labels.iter().position(|&l| l as usize >= self.classes) {
            return Err(invalid(format!(
                "label {} of sample {i} is not below the class count {}",
                self.labels[i], self.classes
            )));
        }
        Ok(())
    }
}

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
    let (count, rows, cols, images) = idx::read_images(images_path)?;
    let labels = idx::read_labels(labels_path)?;
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
    let dataset = Dataset {
        images,
        labels,
        rows,
        cols,
        classes: 10,
    };
    if let Some(i) = dataset.labels.iter().position(|&l| l >= 10) {
        return Err(Error::Data {
            path: labels_path.display().to_string(),
            why: format!("label {} of sample {i} is outside 0–9", dataset.labels[i]),
        });
    }
    Ok(dataset)
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
    if (test.rows, test.cols) != (train.rows, train.cols) {
        return Err(Error::Data {
            path: dir.display().to_string(),
            why: format!(
                "test images are {}×{} but training images {}×{}",
                test.rows, test.cols, train.rows, train.cols
            ),
        });
    }
    Ok((train, test))
}
