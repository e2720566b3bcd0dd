//! Where a benchmark workload's first training step spends its time: opening the adapter,
//! building the trainer, and each dispatch of the step itself, timed by the adapter's timestamp
//! queries. A driver that compiles a pipeline at its first dispatch (lavapipe does) shows the
//! compile in that dispatch's row.
//!
//! ```text
//! MESA_SHADER_CACHE_DISABLE=true cargo run --release --example first_step -- W2
//! ```
//! (Without `MESA_SHADER_CACHE_DISABLE`, Mesa finds kernels compiled by an earlier run on disk.)

use std::time::Instant;

use anyhow::{Context, Result, bail};
use wgpu_mlp::bench::Workload;
use wgpu_mlp::train::GpuTrainer;
use wgpu_mlp::{AdapterChoice, Gpu};

fn main() -> Result<()> {
    let workload = match std::env::args().nth(1).as_deref() {
        None | Some("W1") => Workload::W1,
        Some("W2") => Workload::W2,
        Some(other) => bail!("unknown workload {other:?}: give W1 or W2"),
    };
    let config = workload.config();
    let data = wgpu_mlp::data::synthetic::generate(4 * config.batch_size, 0, 1).0;

    let start = Instant::now();
    let gpu = Gpu::new(AdapterChoice::default())?;
    let opened = start.elapsed();
    if !gpu.has_timestamps() {
        bail!("{} has no timestamp queries", gpu.adapter_description());
    }
    let mut trainer = GpuTrainer::new(&gpu, &workload.mlp()?, &data, None, config)?;
    let built = start.elapsed();
    trainer.profile_next_steps(1)?;
    trainer.run_steps(1)?;
    let stepped = start.elapsed();

    println!("{workload:?} on {}", gpu.adapter_description());
    println!("  open the adapter   {:.3} s", opened.as_secs_f64());
    println!(
        "  build the trainer  {:.3} s",
        (built - opened).as_secs_f64()
    );
    println!(
        "  first step         {:.3} s",
        (stepped - built).as_secs_f64()
    );
    println!("  total              {:.3} s\n", stepped.as_secs_f64());
    print!("{}", trainer.profile().context("no profile was taken")?);
    Ok(())
}
