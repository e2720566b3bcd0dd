//! What several commands share: the data-set options, opening the adapter, and printing a
//! confusion matrix, a progress bar or a kernel profile.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use wgpu_mlp::data::{self, Dataset, DatasetKind, synthetic};
use wgpu_mlp::gpu::profile::Profile;
use wgpu_mlp::ndarray::Array2;
use wgpu_mlp::{AdapterChoice, Gpu};

/// The seed of the synthetic set and of a new model when none is given or saved.
pub const DEFAULT_SEED: u64 = 42;

/// Where the data comes from.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Data set.
    #[arg(long, value_enum, default_value = "synthetic")]
    pub dataset: DatasetKind,
    /// Folder with the IDX files (.gz or raw); default: $WGPU_MLP_DATA, ./data/<dataset>, and for
    /// Fashion-MNIST /usr/share/datasets/fashion-mnist.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Training samples to use (all when omitted; the synthetic set makes this many, default 10000).
    #[arg(long, value_name = "N")]
    pub train_size: Option<usize>,
    /// Test samples to use (all when omitted; the synthetic set makes this many, default 2000).
    #[arg(long, value_name = "N")]
    pub test_size: Option<usize>,
}

impl DataArgs {
    /// The training and test sets the options select; `seed` generates the synthetic set.
    pub fn load(&self, seed: u64) -> Result<(Dataset, Dataset)> {
        if self.dataset == DatasetKind::Synthetic {
            return Ok(synthetic::generate(
                self.train_size.unwrap_or(10_000),
                self.test_size.unwrap_or(2_000),
                seed,
            ));
        }
        let dir = data::find_data_dir(self.dataset, self.data.as_deref())?;
        let (train, test) = data::load(&dir)?;
        let keep = |set: Dataset, size: Option<usize>| match size {
            Some(n) => set.take(n),
            None => set,
        };
        Ok((keep(train, self.train_size), keep(test, self.test_size)))
    }
}

/// The adapter `--adapter` names: `auto`, `software`, or part of an adapter's name.
pub fn open_gpu(adapter: &str) -> Result<Gpu> {
    let choice: AdapterChoice = adapter.parse().unwrap_or_default();
    Ok(Gpu::new(choice)?)
}

/// How the CLI names the CPU reference where it names an adapter.
pub const CPU_ADAPTER: &str = "cpu (ndarray reference)";

/// Prints `confusion[[truth, predicted]]` as a table with a header row of predicted classes.
pub fn print_confusion(confusion: &Array2<u64>) {
    println!("confusion matrix (rows: true class, columns: predicted)");
    let header: String = (0..confusion.ncols()).map(|c| format!("{c:>6}")).collect();
    println!("     {header}");
    for (t, row) in confusion.rows().into_iter().enumerate() {
        let cells: String = row.iter().map(|n| format!("{n:>6}")).collect();
        println!("{t:>4} {cells}");
    }
}

/// A progress bar for one epoch of `total` samples.
pub fn progress_bar(epoch: usize, epochs: usize, total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} {per_sec} loss {msg} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

/// A profile as JSON: the kernels in step order with their time per step.
pub fn profile_json(profile: &Profile) -> serde_json::Value {
    let kernels: Vec<_> = profile
        .kernels
        .iter()
        .map(|k| {
            json!({
                "kernel": k.label, "calls_per_step": k.calls_per_step,
                "ms_per_step": k.per_step.as_secs_f64() * 1e3,
            })
        })
        .collect();
    json!({
        "steps": profile.steps, "gpu_ms_per_step": profile.gpu_per_step().as_secs_f64() * 1e3,
        "kernels": kernels,
    })
}
