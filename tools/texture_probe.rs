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

fn main() -> Result<()> {
    let (m, n, k) = (256u32, 1024u32, 1024u32);
    let gpu = Gpu::new(AdapterChoice::Auto)?;
    let device = gpu.device();
    let queue = gpu.queue();
    let mut rng = Rng::new(1);
    let a: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
    let a_buf = gpu.storage_buffer_with("a", &a)?;
    let b_buf = gpu.storage_buffer_with("b", &b)?;
    let c_buf = gpu.storage_buffer("c", (m * n) as usize)?;
    let params = {
        use wgpu::util::DeviceExt;
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("p"),
            contents: bytemuck::cast_slice(&[m, n, k, 0]),
            usage: wgpu::BufferUsages::UNIFORM,
        })
    };
    let texture = |label, format: wgpu::TextureFormat, width: u32, bytes: &[u8]| {
        let t = device.create_texture(&wgpu::TextureDescriptor {
            label: Some(label),
            size: wgpu::Extent3d {
                width,
                height: k,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let texel = bytes.len() as u32 / (width * k);
        queue.write_texture(
            t.as_image_copy(),
            bytes,
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(width * texel),
                rows_per_image: Some(k),
            },
            wgpu::Extent3d {
                width,
                height: k,
                depth_or_array_layers: 1,
            },
        );
        t.create_view(&Default::default())
    };
    let tex1 = texture(
        "b r32",
        wgpu::TextureFormat::R32Float,
        n,
        bytemuck::cast_slice(&b),
    );
    let tex4 = texture(
        "b rgba32",
        wgpu::TextureFormat::Rgba32Float,
        n / 4,
        bytemuck::cast_slice(&b),
    );
    // SAFETY: the probe's shapes are multiples of its tiles; every index is in range.
    let module = unsafe {
        device.create_shader_module_trusted(
            wgpu::ShaderModuleDescriptor {
                label: Some("texture probe"),
                source: wgpu::ShaderSource::Wgsl(SHADER.into()),
            },
            wgpu::ShaderRuntimeChecks::unchecked(),
        )
    };
    // CPU check of a few elements.
    let expect = |r: usize, col: usize| -> f32 {
        (0..k as usize)
            .map(|i| a[r * k as usize + i] * b[i * n as usize + col])
            .sum()
    };
    // One pipeline per source; every pipeline gets all four Bs, so one bind group serves all.
    let binding = |binding, resource| wgpu::BindGroupEntry { binding, resource };
    for (name, source) in [
        ("buffer", 0.0),
        ("r32", 1.0),
        ("rgba32", 2.0),
        ("vec4", 3.0),
    ] {
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: None,
            module: &module,
            entry_point: Some("matmul"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &[("SOURCE", source)],
                ..Default::default()
            },
            cache: None,
        });
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(name),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                binding(0, params.as_entire_binding()),
                binding(1, a_buf.as_entire_binding()),
                binding(2, b_buf.as_entire_binding()),
                binding(3, c_buf.as_entire_binding()),
                binding(4, wgpu::BindingResource::TextureView(&tex1)),
                binding(5, wgpu::BindingResource::TextureView(&tex4)),
                binding(6, b_buf.as_entire_binding()),
            ],
        });
        let run = |times: usize| -> Result<f64> {
            let start = Instant::now();
            let mut encoder = device.create_command_encoder(&Default::default());
            for _ in 0..times {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind, &[]);
                pass.dispatch_workgroups(n / 128, m / 16, 1);
            }
            queue.submit([encoder.finish()]);
            device.poll(wgpu::PollType::wait_indefinitely())?;
            Ok(start.elapsed().as_secs_f64())
        };
        let first = run(1)?;
        let seconds = run(4)?;
        let c = gpu.read_f32(&c_buf, (m * n) as usize)?;
        let worst = [(0, 0), (17, 300), (255, 1023), (100, 513)]
            .iter()
            .map(|&(r, col)| (c[r * n as usize + col] - expect(r, col)).abs())
            .fold(0.0f32, f32::max);
        let flops = 2.0 * (m * n * k) as f64 * 4.0;
        println!(
            "{name:6} {:6.2} GFLOP/s  first {first:.2} s  worst error {worst:e}",
            flops / seconds / 1e9
        );
    }
    Ok(())
}
