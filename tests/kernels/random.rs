//! `shaders/random.wgsl`: Philox4x32-10 on the GPU gives, bit for bit, the words and uniforms of
//! `rng::philox4x32_10` on the CPU, which itself is held to Random123's known answers.

use crate::common::gpu;
use wgpu::util::DeviceExt;
use wgpu_mlp::rng::{philox4x32_10, signed_uniform, unit_uniform};

/// Counters drawn, and the words each writes: the four Philox words and two uniforms' bits.
const DRAWS: u32 = 4096;
const WORDS_PER_DRAW: usize = 6;
const KEY: [u32; 2] = [0x1234_5678, 0x9abc_def0];

/// Counter `i`'s words spread over all four counter words, as the kernels' coordinates are.
fn counter(i: u32) -> [u32; 4] {
    [i, i.wrapping_mul(7).wrapping_add(1), i / 64, 0xabcd ^ i]
}

const KERNEL: &str = r#"
@group(0) @binding(0) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(64)
fn draw(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let words = philox4x32_10(vec4<u32>(i, i * 7u + 1u, i / 64u, 0xabcdu ^ i), vec2<u32>(KEY0, KEY1));
    let base = 6u * i;
    out[base] = words.x;
    out[base + 1u] = words.y;
    out[base + 2u] = words.z;
    out[base + 3u] = words.w;
    out[base + 4u] = bitcast<u32>(unit_uniform(words.x));
    out[base + 5u] = bitcast<u32>(signed_uniform(words.y));
}
"#;

#[test]
fn philox_on_the_gpu_equals_the_cpu_bit_for_bit() {
    let gpu = gpu();
    let device = gpu.device();
    let source = format!(
        "const KEY0: u32 = {}u;\nconst KEY1: u32 = {}u;\n{}\n{KERNEL}",
        KEY[0],
        KEY[1],
        include_str!("../../shaders/random.wgsl")
    );
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("philox test"),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("philox test"),
        layout: None,
        module: &module,
        entry_point: Some("draw"),
        compilation_options: Default::default(),
        cache: None,
    });
    let len = DRAWS as usize * WORDS_PER_DRAW;
    let out = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("philox test output"),
        contents: bytemuck::cast_slice(&vec![0u32; len]),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    });
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("philox test"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: out.as_entire_binding(),
        }],
    });
    let mut encoder = gpu.encoder("philox test");
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("philox test"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(DRAWS / 64, 1, 1);
    }
    gpu.submit_and_wait(encoder).unwrap();
    let got: Vec<u32> = gpu
        .read_f32(&out, len)
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect();

    for i in 0..DRAWS {
        let words = philox4x32_10(counter(i), KEY);
        let want = [
            words[0],
            words[1],
            words[2],
            words[3],
            unit_uniform(words[0]).to_bits(),
            signed_uniform(words[1]).to_bits(),
        ];
        let at = i as usize * WORDS_PER_DRAW;
        assert_eq!(
            got[at..at + WORDS_PER_DRAW],
            want,
            "draw {i}, counter {:x?}",
            counter(i)
        );
    }
}
