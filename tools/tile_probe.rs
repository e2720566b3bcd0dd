//! Research probe, not an example of the library's use: measures the matmul's throughput
//! (GFLOP/s) for one shape with every tile given, or with the tile the adapter picks, to make
//! and check the per-shape tile choice (`MatmulTile::for_shape`) on any adapter.
//!
//! ```text
//! cargo run --release --example tile_probe -- M N K LAYOUT [TILE]...
//! ```
//! LAYOUT is `nn` (A·B), `nt` (A·Bᵀ) or `tn` (Aᵀ·B). A TILE is `shared` (every tile of the
//! shared-memory kernel GPUs get), `register` (the register-blocked kernel's usual tiles),
//! `shuffled` (the shuffled kernel's) or `KERNEL:WG_X,WG_Y,BLOCK_M,BLOCK_N` with KERNEL `s`
//! (shared memory), `r` (register blocks) or `q` (register blocks with A shuffled).
//! Without a TILE, the kernel and tile the adapter picks. The first run of a new pipeline
//! includes the driver's shader compile, so it is printed apart.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use wgpu_mlp::gpu::kernels::matmul::{
    Epilogue, Matmul, MatmulOperands, MatmulShape, MatmulSplit, MatmulTile,
};
use wgpu_mlp::gpu::kernels::{Dispatch, MatmulStrategy};
use wgpu_mlp::rng::Rng;
use wgpu_mlp::{AdapterChoice, Gpu};

fn parse_tiles(spec: &str) -> Result<Vec<(MatmulStrategy, MatmulTile)>> {
    let eight_wide = |wg_y, block_m, block_n| MatmulTile {
        wg_x: 8,
        wg_y,
        block_m,
        block_n,
    };
    match spec {
        "shared" => {
            return Ok(MatmulTile::SHARED_TILES
                .iter()
                .map(|&tile| (MatmulStrategy::Tiled, tile))
                .collect());
        }
        "register" | "shuffled" => {
            // (rows of invocations, block rows, block columns) of each kernel's candidate tiles.
            let (strategy, tiles) = match spec {
                "register" => (
                    MatmulStrategy::RegisterBlocked,
                    [(1, 16, 16), (2, 8, 16), (8, 4, 4)],
                ),
                _ => (
                    MatmulStrategy::Shuffled,
                    [(1, 32, 8), (1, 16, 8), (1, 32, 4)],
                ),
            };
            return Ok(tiles
                .into_iter()
                .map(|(wg_y, block_m, block_n)| (strategy, eight_wide(wg_y, block_m, block_n)))
                .collect());
        }
        _ => {}
    }
    let (kernel, sides) = spec.split_once(':').with_context(|| {
        format!("tile {spec:?}: give shared, register, shuffled or s|r|q:X,Y,BM,BN")
    })?;
    let strategy = match kernel {
        "s" => MatmulStrategy::Tiled,
        "r" => MatmulStrategy::RegisterBlocked,
        "q" => MatmulStrategy::Shuffled,
        other => bail!("tile {spec:?}: kernel {other:?} is not s, r or q"),
    };
    let sides: Vec<u32> = sides
        .split(',')
        .map(|v| v.parse().with_context(|| format!("tile {spec:?}: {v:?}")))
        .collect::<Result<_>>()?;
    let [wg_x, wg_y, block_m, block_n] = sides[..] else {
        bail!("tile {spec:?}: give four numbers");
    };
    Ok(vec![(
        strategy,
        MatmulTile {
            wg_x,
            wg_y,
            block_m,
            block_n,
        },
    )])
}

/// Seconds for the first run of `variant` (with its pipeline's compile), and GFLOP/s over
/// enough further runs to time.
fn measure(
    gpu: &Gpu,
    variant: Matmul,
    shape: MatmulShape,
    operands: MatmulOperands<'_>,
) -> Result<(f64, f64)> {
    let dispatch = variant.bind(gpu, "probe", shape, operands, Epilogue::None)?;
    let start = Instant::now();
    Dispatch::run_all(gpu, &[&dispatch])?;
    let first = start.elapsed().as_secs_f64();
    let flops = 2.0 * (shape.m * shape.n * shape.k) as f64;
    // Enough runs for about 25 ms on a GPU at 20 TFLOP/s, or 0.2 s on a CPU adapter at
    // 10 GFLOP/s; at least 3.
    let flops_to_run = if gpu.adapter_info().device_type == wgpu::DeviceType::Cpu {
        2e9
    } else {
        5e11
    };
    let runs = ((flops_to_run / flops).ceil() as usize).clamp(3, 2_000);
    let list = vec![&dispatch; runs];
    let start = Instant::now();
    Dispatch::run_all(gpu, &list)?;
    let seconds = start.elapsed().as_secs_f64();
    Ok((first, flops * runs as f64 / seconds / 1e9))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        bail!("usage: tile_probe M N K nn|nt|tn [shared|register|shuffled|s|r|q:X,Y,BM,BN]...");
    }
    let number = |i: usize| -> Result<usize> {
        args[i]
            .parse()
            .with_context(|| format!("argument {}: {:?} is not a number", i + 1, args[i]))
    };
    let (m, n, k) = (number(0)?, number(1)?, number(2)?);
    let variant = match args[3].as_str() {
        "nn" => Matmul::NN,
        "nt" => Matmul::NT,
        "tn" => Matmul::TN,
        other => bail!("layout {other:?}: give nn, nt or tn"),
    };
    let gpu = Gpu::new(AdapterChoice::Auto)?;
    let shape = MatmulShape { m, n, k };
    let strategy = gpu.config().matmul;
    let chosen = MatmulTile::for_shape(strategy, shape);
    let mut tiles = Vec::new();
    for spec in &args[4..] {
        tiles.extend(parse_tiles(spec)?);
    }
    if tiles.is_empty() {
        tiles.push((strategy, chosen));
    }
    // Random operands: a GPU multiplies zeros faster than real data.
    let mut rng = Rng::new(1);
    let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.normal() as f32).collect() };
    let a = gpu.storage_buffer_with("a", &random(m * k))?;
    let b = gpu.storage_buffer_with("b", &random(k * n))?;
    let c = gpu.storage_buffer("c", m * n)?;
    println!("{m}×{n}×{k} {} on {}", args[3], gpu.adapter_description());
    for (tile_strategy, tile) in tiles {
        let operands = MatmulOperands {
            a: &a,
            b: &b,
            c: &c,
        };
        let variant = variant.with_strategy(tile_strategy).with_tile(tile);
        let (first, gflops) = measure(&gpu, variant, shape, operands)?;
        let split = match MatmulSplit::for_shape(tile_strategy, tile, shape) {
            Some(split) => format!(", k in {:>2} parts", split.parts),
            None => String::new(),
        };
        println!(
            "  {:<15} {:>2}×{:<2} invocations, {:>2}×{:<2} blocks, {:>3}×{:<3} tile{split:<15}{:<9} {:9.1} GFLOP/s   (first run {:.3} s)",
            format!("{tile_strategy:?}"),
            tile.wg_x,
            tile.wg_y,
            tile.block_m,
            tile.block_n,
            tile.rows(),
            tile.cols(),
            if (tile_strategy, tile) == (strategy, chosen) {
                " (chosen)"
            } else {
                ""
            },
            gflops,
            first
        );
    }
    Ok(())
}
