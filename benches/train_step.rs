//! Whole training steps of the W1 and W2 workloads (see `wgpu_mlp::bench`) with the data
//! resident on the GPU, as samples/s (criterion's "elem/s"), with the fused kernels and with the
//! unfused ones (bias, activation and ⊙g′ as kernels of their own) to show what fusing saves.
//! The GPU is waited for inside the timed region.
//!
//! `cargo bench --bench train_step`; `wgpu-mlp bench` measures the same from the command line.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wgpu_mlp::bench::Workload;
use wgpu_mlp::data::Dataset;
use wgpu_mlp::rng::Rng;
use wgpu_mlp::train::GpuTrainer;
use wgpu_mlp::{AdapterChoice, Fusion, Gpu};

fn train_step(c: &mut Criterion) {
    let choice: AdapterChoice = std::env::var("WGPU_MLP_ADAPTER")
        .unwrap_or_else(|_| "auto".into())
        .parse()
        .unwrap();
    let gpu = Gpu::new(choice).expect("benchmarks need a GPU adapter");
    let mut group = c.benchmark_group(format!("train step on {}", gpu.adapter_info().name));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for workload in [Workload::W1, Workload::W2] {
        let config = workload.config();
        let mut rng = Rng::new(1);
        let len = 16 * config.batch_size;
        let pixels = (0..len * 784).map(|_| rng.below(256) as u8).collect();
        let labels = (0..len).map(|_| rng.below(10) as u32).collect();
        let data = Dataset::images(pixels, (28, 28), labels, 10).unwrap();
        let mut trainer =
            GpuTrainer::new(&gpu, &workload.mlp().unwrap(), &data, None, config.clone()).unwrap();
        group.throughput(Throughput::Elements(config.batch_size as u64));
        for fusion in [Fusion::Fused, Fusion::Unfused] {
            trainer.set_fusion(fusion).unwrap();
            group.bench_function(format!("{} {fusion:?}", workload.name()), |bench| {
                bench.iter_custom(|iters| {
                    let start = Instant::now();
                    trainer.run_steps(iters as usize).unwrap();
                    start.elapsed()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
