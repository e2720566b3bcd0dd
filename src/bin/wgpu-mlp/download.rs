//! `wgpu-mlp download`: fetches MNIST or Fashion-MNIST and keeps each file only if its checksum
//! is the published one. Ctrl-C stops between chunks and removes the partial file.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use crate::common::{interrupt_flag, out};
use wgpu_mlp::data::{DatasetKind, download};

#[derive(Args, Debug)]
pub struct DownloadArgs {
    /// Data set to fetch.
    #[arg(long, value_enum, default_value = "mnist")]
    dataset: DatasetKind,
    /// Folder to put the files in (default: ./data/<dataset>).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// A mirror (URL prefix) to try; repeat for several. Default: the data set's usual mirrors.
    #[arg(long, value_name = "URL")]
    mirror: Vec<String>,
}

pub fn run(args: DownloadArgs) -> Result<()> {
    let kind = args.dataset;
    let dir = args
        .data
        .unwrap_or_else(|| Path::new("data").join(kind.name()));
    let mirrors = if args.mirror.is_empty() {
        download::default_mirrors(kind)
    } else {
        args.mirror
    };
    let stop = interrupt_flag()?;
    let spec = download::DownloadSpec::published(kind)?;
    for outcome in download::download_with(&spec, &dir, &mirrors, Some(&stop))? {
        match outcome {
            download::FileOutcome::Present(path) => {
                out!("{}: present, checksum ok", path.display())?
            }
            download::FileOutcome::Downloaded(path, url) => {
                out!("{}: downloaded from {url}, checksum ok", path.display())?
            }
        }
    }
    Ok(())
}
