//! Measures the matmul for one shape with every tile given, or with the tile the adapter picks:
//! how the per-shape tile choice (`MatmulTile::for_shape`) was made, and how to check it on
//! another adapter.
//!
//! ```text
//! cargo run --release --example tile_probe -- M N K LAYOUT [WG_Y BLOCK_M BLOCK_N]...
//! ```
//! LAYOUT is `nn` (A·B), `nt` (A·Bᵀ) or `tn` (Aᵀ·B); each tile is 8 invocations wide. The first
//! run of a new pipeline includes the driver's shader compile, so it is printed apart.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use wgpu_mlp::gpu::kernels::Dispatch;
use wgpu_mlp::gpu::kernels::matmul::{Matmul, MatmulShape, MatmulTile};
use wgpu_mlp::{AdapterChoice, Gpu};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 || !(args.len() - 4).is_multiple_of(3) {
        bail!("usage: tile_probe M N K nn|nt|tn [WG_Y BLOCK_M BLOCK_N]...");
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
    let chosen = MatmulTile::for_shape(gpu.config().matmul, shape);
    let mut tiles = Vec::new();
    for i in (4..args.len()).step_by(3) {
        tiles.push(MatmulTile {
            wg_x: 8,
            wg_y: number(i)? as u32,
            block_m: number(i + 1)? as u32,
            block_n: number(i + 2)? as u32,
        });
    }
    if tiles.is_empty() {
        tiles.push(chosen);
    }
    let a = gpu.storage_buffer("a", m * k)?;
    let b = gpu.storage_buffer("b", k * n)?;
    let c = gpu.storage_buffer("c", m * n)?;
    println!("{m}×{n}×{k} {} on {}", args[3], gpu.adapter_description());
    for tile in tiles {
        let dispatch = variant
            .with_tile(tile)
            .bind(&gpu, "probe", shape, &a, &b, &a, &a, &c)?;
        let start = Instant::now();
        Dispatch::run_all(&gpu, &[&dispatch])?;
        let first = start.elapsed().as_secs_f64();
        let flops = 2.0 * (m * n * k) as f64;
        let runs = ((2e9 / flops).ceil() as usize).max(3);
        let list = vec![&dispatch; runs];
        let start = Instant::now();
        Dispatch::run_all(&gpu, &list)?;
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "  {:>2}×{} invocations, {:>2}×{:<2} blocks{:<9} {:7.2} GFLOP/s   (first run {:.3} s)",
            tile.wg_x,
            tile.wg_y,
            tile.block_m,
            tile.block_n,
            if tile == chosen { " (chosen)" } else { "" },
            flops * runs as f64 / seconds / 1e9,
            first
        );
    }
    Ok(())
}
