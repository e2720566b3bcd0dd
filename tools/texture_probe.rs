//! Research probe, not an example of the library's use: measures whether reading B through a
//! texture beats a storage buffer on a CPU adapter, as GFLOP/s. lavapipe loads a
//! lane-varying storage-buffer address one lane at a time through the stack (BENCHMARKS.md, "a
//! slower host"); its texel fetches take another path. Four copies of the CPU adapter's
//! 16×16-block register kernel compute `C = A·B` at 256×1024×1024, reading B from a storage
//! buffer, an `r32float` texture, an `rgba32float` texture (a vec4 of columns per lane), or the
//! storage buffer as `array<vec4<f32>>` (the same vec4s; lavapipe still fetches each component
//! lane by lane), and each is checked against a CPU sum at a few elements.
//!
//! ```text
//! cargo run --release --example texture_probe
//! ```
//! A measurement, not part of the library: keeping weights and activations in textures as
//! well as buffers would cost a copy per step and a second code path for every product.

use std::time::Instant;

use anyhow::Result;
use wgpu_mlp::rng::Rng;
use wgpu_mlp::{AdapterChoice, Gpu};

const SHADER: &str = r#"
struct P { m: u32, n: u32, k: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var b_tex: texture_2d<f32>;
@group(0) @binding(5) var b_tex4: texture_2d<f32>;
@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;

const BM: u32 = 16u;
const BN: u32 = 16u;

// Where B comes from: 0 the storage buffer, 1 the r32float texture, 2 the rgba32float one,
// 3 the storage buffer as vec4s.
override SOURCE: u32 = 0u;

// Column `s` of invocation `l`'s block: columns 8 apart, or with rgba32float vec4s of
// consecutive columns 8 quads apart (texel (q, i) holds B[i, 4q .. 4q+3]).
fn column(g: vec3<u32>, l: vec3<u32>, s: u32) -> u32 {
    if SOURCE >= 2u {
        return 4u * (g.x * 32u + l.x + (s / 4u) * 8u) + s % 4u;
    }
    return g.x * 128u + l.x + s * 8u;
}

@compute @workgroup_size(8, 1)
fn matmul(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
    let row0 = g.y * BM;
    var acc: array<array<f32, BN>, BM>;
    var ar: array<f32, BM>;
    var br: array<f32, BN>;
    for (var i = 0u; i < p.k; i++) {
        for (var r = 0u; r < BM; r++) { ar[r] = a[(row0 + r) * p.k + i]; }
        if SOURCE == 3u {
            for (var t = 0u; t < BN / 4u; t++) {
                let v = b4[(i * p.n + column(g, l, 4u * t)) / 4u];
                br[4u * t] = v.x; br[4u * t + 1u] = v.y; br[4u * t + 2u] = v.z; br[4u * t + 3u] = v.w;
            }
        } else if SOURCE == 2u {
            for (var t = 0u; t < BN / 4u; t++) {
                let v = textureLoad(b_tex4, vec2<u32>(column(g, l, 4u * t) / 4u, i), 0);
                br[4u * t] = v.x; br[4u * t + 1u] = v.y; br[4u * t + 2u] = v.z; br[4u * t + 3u] = v.w;
            }
        } else if SOURCE == 1u {
            for (var s = 0u; s < BN; s++) { br[s] = textureLoad(b_tex, vec2<u32>(column(g, l, s), i), 0).x; }
        } else {
            for (var s = 0u; s < BN; s++) { br[s] = b[i * p.n + column(g, l, s)]; }
        }
        for (var r = 0u; r < BM; r++) { for (var s = 0u; s < BN; s++) { acc[r][s] = fma(ar[r], br[s], acc[r][s]); } }
    }
    for (var r = 0u; r < BM; r++) { for (var s = 0u; s < BN; s++) { c[(row0 + r) * p.n + column(g, l, s)] = acc[r][s]; } }
}
"#;

/// The probe's product: `C (m×n) = A (m×k) · B (k×n)`.
const M: u32 = 256;
const N: u32 = 1024;
const K: u32 = 1024;

/// B's four copies, and everything else the one bind group holds.
struct Operands {
    params: wgpu::Buffer,
    a: wgpu::Buffer,
    b: wgpu::Buffer,
    c: wgpu::Buffer,
    b_r32: wgpu::TextureView,
    b_rgba32: wgpu::TextureView,
}

/// A `width × K` texture of `format` holding `bytes`.
fn upload_texture(
    gpu: &Gpu,
    label: &str,
    format: wgpu::TextureFormat,
    width: u32,
    bytes: &[u8],
) -> wgpu::TextureView {
    let size = wgpu::Extent3d {
        width,
        height: K,
        depth_or_array_layers: 1,
    };
    let texture = gpu.device().create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    let texel = bytes.len() as u32 / (width * K);
    gpu.queue().write_texture(
        texture.as_image_copy(),
        bytes,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(width * texel),
            rows_per_image: Some(K),
        },
        size,
    );
    texture.create_view(&wgpu::TextureViewDescriptor {
        label: Some(label),
        ..Default::default()
    })
}

/// Seconds for one run and for four of the pipeline that reads B from `source` (its `SOURCE`
/// constant); `C` holds the product afterwards.
fn time_source(
    gpu: &Gpu,
    module: &wgpu::ShaderModule,
    operands: &Operands,
    name: &str,
    source: f64,
) -> Result<(f64, f64)> {
    let device = gpu.device();
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(name),
        layout: None,
        module,
        entry_point: Some("matmul"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &[("SOURCE", source)],
            ..Default::default()
        },
        cache: None,
    });
    // Every pipeline gets all four Bs, so one bind group layout serves all.
    let binding = |binding, resource| wgpu::BindGroupEntry { binding, resource };
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(name),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            binding(0, operands.params.as_entire_binding()),
            binding(1, operands.a.as_entire_binding()),
            binding(2, operands.b.as_entire_binding()),
            binding(3, operands.c.as_entire_binding()),
            binding(4, wgpu::BindingResource::TextureView(&operands.b_r32)),
            binding(5, wgpu::BindingResource::TextureView(&operands.b_rgba32)),
            binding(6, operands.b.as_entire_binding()),
        ],
    });
    let run = |times: usize| -> Result<f64> {
        let start = Instant::now();
        let mut encoder = gpu.encoder(name);
        for _ in 0..times {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(name),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(N / 128, M / 16, 1);
        }
        gpu.queue().submit([encoder.finish()]);
        device.poll(wgpu::PollType::wait_indefinitely())?;
        Ok(start.elapsed().as_secs_f64())
    };
    Ok((run(1)?, run(4)?))
}

fn main() -> Result<()> {
    let gpu = Gpu::new(AdapterChoice::Auto)?;
    let mut rng = Rng::new(1);
    let a: Vec<f32> = (0..M * K).map(|_| rng.normal() as f32).collect();
    let b: Vec<f32> = (0..K * N).map(|_| rng.normal() as f32).collect();
    let params = {
        use wgpu::util::DeviceExt;
        gpu.device()
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("p"),
                contents: bytemuck::cast_slice(&[M, N, K, 0]),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    };
    let b_bytes: &[u8] = bytemuck::cast_slice(&b);
    let operands = Operands {
        params,
        a: gpu.storage_buffer_with("a", &a)?,
        b: gpu.storage_buffer_with("b", &b)?,
        c: gpu.storage_buffer("c", (M * N) as usize)?,
        b_r32: upload_texture(&gpu, "b r32", wgpu::TextureFormat::R32Float, N, b_bytes),
        b_rgba32: upload_texture(
            &gpu,
            "b rgba32",
            wgpu::TextureFormat::Rgba32Float,
            N / 4,
            b_bytes,
        ),
    };
    // SAFETY: the probe's shapes are multiples of its tiles; every index is in range.
    let module = unsafe {
        gpu.device().create_shader_module_trusted(
            wgpu::ShaderModuleDescriptor {
                label: Some("texture probe"),
                source: wgpu::ShaderSource::Wgsl(SHADER.into()),
            },
            wgpu::ShaderRuntimeChecks::unchecked(),
        )
    };
    // CPU check of a few elements.
    let expect = |r: usize, col: usize| -> f32 {
        (0..K as usize)
            .map(|i| a[r * K as usize + i] * b[i * N as usize + col])
            .sum()
    };
    for (name, source) in [
        ("buffer", 0.0),
        ("r32", 1.0),
        ("rgba32", 2.0),
        ("vec4", 3.0),
    ] {
        let (first, seconds) = time_source(&gpu, &module, &operands, name, source)?;
        let c = gpu.read_f32(&operands.c, (M * N) as usize)?;
        let worst = [(0, 0), (17, 300), (255, 1023), (100, 513)]
            .iter()
            .map(|&(r, col)| (c[r * N as usize + col] - expect(r, col)).abs())
            .fold(0.0f32, f32::max);
        let flops = 2.0 * (M * N * K) as f64 * 4.0;
        println!(
            "{name:6} {:6.2} GFLOP/s  first {first:.2} s  worst error {worst:e}",
            flops / seconds / 1e9
        );
    }
    Ok(())
}
