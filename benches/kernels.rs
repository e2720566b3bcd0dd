//! Kernel throughput: matmul in each layout backprop uses, at MLP shapes and square sizes, as
//! GFLOP/s (criterion's "elem/s" counts floating-point operations here), and element-wise
//! kernels as GB/s. The GPU is waited for inside the timed region.
//!
//! `cargo bench --bench kernels`; `WGPU_MLP_ADAPTER` picks the adapter.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wgpu_mlp::gpu::kernels::elementwise::Elementwise;
use wgpu_mlp::gpu::kernels::matmul::{Epilogue, Matmul, MatmulOperands, MatmulShape};
use wgpu_mlp::gpu::kernels::{Dispatch, MatmulStrategy};
use wgpu_mlp::rng::Rng;
use wgpu_mlp::{AdapterChoice, Gpu};

fn gpu() -> Gpu {
    let choice: AdapterChoice = std::env::var("WGPU_MLP_ADAPTER")
        .unwrap_or_else(|_| "auto".into())
        .parse()
        .unwrap();
    Gpu::new(choice).expect("benchmarks need a GPU adapter")
}

/// A buffer of `len` values from N(0, 1): never time on zeros, which a GPU multiplies faster.
fn random_buffer(gpu: &Gpu, label: &str, len: usize) -> wgpu::Buffer {
    let mut rng = Rng::new(len as u64);
    let values: Vec<f32> = (0..len).map(|_| rng.normal() as f32).collect();
    gpu.storage_buffer_with(label, &values).unwrap()
}

/// Records `dispatch` `iters` times in one pass, submits, waits; returns the wall time.
fn time_dispatches(gpu: &Gpu, dispatch: &Dispatch, iters: u64) -> Duration {
    let mut encoder = gpu.encoder("bench");
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("bench"),
            timestamp_writes: None,
        });
        for _ in 0..iters {
            dispatch.record(&mut pass);
        }
    }
    let start = Instant::now();
    gpu.submit_and_wait(encoder).unwrap();
    start.elapsed()
}

/// (m, k, n): `op(A): (m, k)`, `op(B): (k, n)`. The MLP shapes are those of a 784-1024-1024-10
/// network at batch 256; then square sizes.
const SHAPES: [(usize, usize, usize); 8] = [
    (256, 784, 1024),
    (256, 1024, 1024),
    (1024, 256, 1024),
    (256, 1024, 10),
    (256, 256, 256),
    (512, 512, 512),
    (1024, 1024, 1024),
    (2048, 2048, 2048),
];

fn matmul(c: &mut Criterion) {
    let gpu = gpu();
    let strategy = gpu.config().matmul;
    let mut group = c.benchmark_group(format!(
        "matmul {strategy:?} on {}",
        gpu.adapter_info().name
    ));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (m, k, n) in SHAPES {
        let a = random_buffer(&gpu, "a", m * k);
        let b = random_buffer(&gpu, "b", k * n);
        let out = gpu.storage_buffer("c", m * n).unwrap();
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        for (name, variant) in [
            ("A·B", Matmul::NN),
            ("A·Bᵀ", Matmul::NT),
            ("Aᵀ·B", Matmul::TN),
        ] {
            let operands = MatmulOperands {
                a: &a,
                b: &b,
                c: &out,
            };
            let dispatch = variant
                .with_strategy(strategy)
                .bind(
                    &gpu,
                    "bench",
                    MatmulShape { m, n, k },
                    operands,
                    Epilogue::None,
                )
                .unwrap();
            group.bench_with_input(
                BenchmarkId::new(name, format!("{m}x{k}x{n}")),
                &dispatch,
                |bench, dispatch| bench.iter_custom(|iters| time_dispatches(&gpu, dispatch, iters)),
            );
        }
    }
    group.finish();
}

fn matmul_strategies(c: &mut Criterion) {
    // Every kernel this adapter can run, to show why its choice is what it is.
    let gpu = gpu();
    let mut group = c.benchmark_group(format!("matmul strategies on {}", gpu.adapter_info().name));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let (m, k, n) = (256, 1024, 1024);
    let (a, b, out) = (
        random_buffer(&gpu, "a", m * k),
        random_buffer(&gpu, "b", k * n),
        gpu.storage_buffer("c", m * n).unwrap(),
    );
    group.throughput(Throughput::Elements((2 * m * n * k) as u64));
    let shuffled = gpu.config().subgroups.then_some(MatmulStrategy::Shuffled);
    let strategies = [
        Some(MatmulStrategy::RegisterBlocked),
        shuffled,
        Some(MatmulStrategy::Tiled),
    ];
    for strategy in strategies.into_iter().flatten() {
        let operands = MatmulOperands {
            a: &a,
            b: &b,
            c: &out,
        };
        let dispatch = Matmul::NT
            .with_strategy(strategy)
            .bind(
                &gpu,
                "bench",
                MatmulShape { m, n, k },
                operands,
                Epilogue::None,
            )
            .unwrap();
        group.bench_with_input(
            BenchmarkId::new(format!("{strategy:?}"), format!("{m}x{k}x{n}")),
            &dispatch,
            |bench, dispatch| bench.iter_custom(|iters| time_dispatches(&gpu, dispatch, iters)),
        );
    }
    group.finish();
}

fn elementwise(c: &mut Criterion) {
    let gpu = gpu();
    let mut group = c.benchmark_group(format!("elementwise on {}", gpu.adapter_info().name));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let (rows, cols) = (1024, 1024);
    let (a, b, out) = (
        random_buffer(&gpu, "a", rows * cols),
        random_buffer(&gpu, "b", rows * cols),
        gpu.storage_buffer("c", rows * cols).unwrap(),
    );
    // Two reads and one write of f32 per element.
    group.throughput(Throughput::Bytes((3 * 4 * rows * cols) as u64));
    for op in [Elementwise::Hadamard, Elementwise::Axpy(0.5)] {
        let dispatch = op.bind(&gpu, "bench", rows, cols, &a, &b, &out).unwrap();
        group.bench_with_input(
            BenchmarkId::new(format!("{op:?}"), format!("{rows}x{cols}")),
            &dispatch,
            |bench, dispatch| bench.iter_custom(|iters| time_dispatches(&gpu, dispatch, iters)),
        );
    }
    group.finish();
}

criterion_group!(benches, matmul, matmul_strategies, elementwise);
criterion_main!(benches);
