//! The data options of the commands that train or evaluate: a built-in data set, or the user's
//! own files (`.npz`, `.csv`, IDX), with a validation split and a scaling; what they mean is the
//! library's ([`wgpu_mlp::run::Data`], [`wgpu_mlp::run::DataOptions`]).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use wgpu_mlp::data::DatasetKind;
use wgpu_mlp::data::files::Task;
use wgpu_mlp::run::{Data, DataOptions, Normalize};

/// Where the data comes from.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Built-in data set [default: synthetic, or the one a saved model was trained on].
    #[arg(long, value_enum, conflicts_with = "train")]
    pub dataset: Option<DatasetKind>,
    /// Folder with the IDX files (.gz or raw); default: the first of $WGPU_MLP_DATA/<dataset>,
    /// $WGPU_MLP_DATA, ./data/<dataset> and, for Fashion-MNIST, /usr/share/datasets/fashion-mnist
    /// that holds them.
    #[arg(long, value_name = "DIR", conflicts_with = "train")]
    pub data: Option<PathBuf>,
    /// Train on your own file: .npz (arrays x and y), .csv (with a header row), or IDX images
    /// (NAME-images-idx3-ubyte[.gz], with NAME-labels-idx1-ubyte[.gz] beside it).
    #[arg(long, value_name = "PATH")]
    pub train: Option<PathBuf>,
    /// Test on this file, of the same format and features as --train.
    #[arg(long, value_name = "PATH")]
    pub test: Option<PathBuf>,
    /// The CSV column to predict [default: the last column].
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Classification or regression [default: classification for integer targets, regression
    /// for floats].
    #[arg(long, value_enum)]
    pub task: Option<Task>,
    /// Classes, when there are more than the largest label + 1.
    #[arg(long, value_name = "N")]
    pub classes: Option<usize>,
    /// Fraction of the training data held out, seeded, to validate on [default: 0.1 with --train
    /// and no --test, else 0].
    #[arg(long, value_name = "FRACTION")]
    pub validation: Option<f64>,
    /// Scaling of float features (and regression targets) [default: standard]; byte features
    /// are always divided by 255.
    #[arg(long, value_enum)]
    pub normalize: Option<Normalize>,
    /// Training samples to use (all when omitted; the synthetic set makes this many, default 10000).
    #[arg(long, value_name = "N")]
    pub train_size: Option<usize>,
    /// Test samples to use (all when omitted; the synthetic set makes this many, default 2000).
    #[arg(long, value_name = "N")]
    pub test_size: Option<usize>,
}

impl DataArgs {
    /// Where the options say the samples come from.
    pub fn data(&self) -> Result<Data> {
        match &self.train {
            Some(train) => Ok(Data::Files {
                train: train.clone(),
                test: self.test.clone(),
            }),
            None if self.test.is_some() => {
                bail!("--test needs --train (or use --dataset for a built-in data set)")
            }
            None => Ok(Data::Builtin {
                kind: self.dataset,
                dir: self.data.clone(),
            }),
        }
    }

    /// How the options say the samples are read, split and scaled.
    pub fn options(&self) -> DataOptions {
        DataOptions {
            target: self.target.clone(),
            task: self.task,
            classes: self.classes,
            normalize: self.normalize,
            train_size: self.train_size,
            test_size: self.test_size,
            validation: self.validation,
        }
    }
}
