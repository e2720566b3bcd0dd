//! Every kernel proven for every backend without its hardware: each shader module, in every
//! configuration the code can generate, goes through naga's WGSL front end and validator and then
//! its MSL, HLSL, SPIR-V and GLSL back ends, with the options wgpu-hal 30 passes on each platform.
//!
//! A configuration is a module's source (the `KernelConfig` header and, with subgroups, the
//! shuffled matmul) and a pipeline of it: an entry point, its override constants as the kernels
//! set them, and whether wgpu's runtime checks are in. Each back end is asked for the oldest and
//! the newest language version wgpu-hal can choose for a device with that configuration.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use naga::back::{glsl, hlsl};
use naga::valid::{ModuleInfo, ValidationFlags};
use naga::{Module, ShaderStage};

use crate::gpu::kernels::matmul::{MatmulShape, MatmulTile};
use crate::gpu::kernels::{KernelConfig, MatmulStrategy, Shader};
use crate::model::{Activation, Loss};

/// Every WGSL file; `listed` fails to compile when a shader is added and not listed here.
const SHADERS: [Shader; 11] = [
    Shader::Activation,
    Shader::Augment,
    Shader::Data,
    Shader::Dropout,
    Shader::Elementwise,
    Shader::Loss,
    Shader::Matmul,
    Shader::Metrics,
    Shader::Optim,
    Shader::Reduce,
    Shader::Transpose,
];

#[allow(dead_code)]
fn listed(shader: Shader) {
    match shader {
        Shader::Activation | Shader::Augment | Shader::Data | Shader::Dropout => {}
        Shader::Elementwise => {}
        Shader::Loss => {}
        Shader::Matmul | Shader::Metrics | Shader::Optim | Shader::Reduce | Shader::Transpose => {}
    }
}

const STRATEGIES: [MatmulStrategy; 3] = [
    MatmulStrategy::Tiled,
    MatmulStrategy::RegisterBlocked,
    MatmulStrategy::Shuffled,
];

/// The entry point of each strategy, as `Matmul::spec` names it.
fn matmul_entry_point(strategy: MatmulStrategy) -> &'static str {
    match strategy {
        MatmulStrategy::Tiled => "matmul_tiled",
        MatmulStrategy::RegisterBlocked => "matmul_register",
        MatmulStrategy::Shuffled => "matmul_shuffled",
    }
}

/// The configurations `KernelConfig::for_adapter` gives over a grid of adapters: CPU and GPU,
/// with and without subgroups, with the limits of wgpu's three presets and WebGPU's compatibility mode, and invocation limits
/// around every power of two up to 1024. The grid is wider than the header needs today so
/// that a header that grows with the limits is still covered: modules are deduplicated by source.
fn kernel_configs() -> Vec<KernelConfig> {
    let mut configs = Vec::new();
    let presets = [
        wgpu::Limits::downlevel_webgl2_defaults(),
        wgpu::Limits::downlevel_defaults(),
        crate::gpu::context::compat_limits(),
        wgpu::Limits::default(),
    ];
    let invocations = (0..=10).flat_map(|p| [(1u32 << p) - 1, 1 << p, (1 << p) + 1]);
    for base in presets {
        for threads in invocations.clone() {
            let limits = wgpu::Limits {
                max_compute_invocations_per_workgroup: threads,
                max_compute_workgroup_size_x: threads,
                ..base.clone()
            };
            for device_type in [wgpu::DeviceType::Cpu, wgpu::DeviceType::DiscreteGpu] {
                let info = wgpu::AdapterInfo::new(device_type, wgpu::Backend::Noop);
                for features in [wgpu::Features::empty(), wgpu::Features::SUBGROUP] {
                    let mut config = KernelConfig::for_adapter(&info, &limits, features);
                    // Whether the checks are in is a pipeline option, enumerated per pipeline.
                    config.bounds_checks = false;
                    configs.push(config);
                }
            }
        }
    }
    configs
}

/// One pipeline of a module.
#[derive(Clone, Debug)]
struct Pipeline {
    entry_point: String,
    constants: Vec<(&'static str, f64)>,
    /// wgpu's runtime checks (bounds, loop bounding, integer division) are in: always, except
    /// for a module that guards its own indices and is compiled unchecked (`Shader::source`'s
    /// caller, `Gpu::module`) unless `KernelConfig::bounds_checks` asks for them.
    checked: bool,
}

impl Pipeline {
    fn label(&self) -> String {
        let checks = if self.checked { "checked" } else { "unchecked" };
        format!("{} {:?} {checks}", self.entry_point, self.constants)
    }
}

/// The tiles each strategy can take: every one `MatmulTile::for_shape` picks over a range of
/// shapes, the whole list of the shared-memory kernel, and for the register kernels the extremes
/// `Matmul::with_tile` accepts (as `tools/tile_probe.rs` and the kernel tests force).
fn matmul_tiles(strategy: MatmulStrategy) -> Vec<MatmulTile> {
    let tile = |wg_x, wg_y, block_m, block_n| MatmulTile {
        wg_x,
        wg_y,
        block_m,
        block_n,
    };
    let mut tiles: Vec<MatmulTile> = match strategy {
        MatmulStrategy::Tiled => MatmulTile::SHARED_TILES.to_vec(),
        MatmulStrategy::RegisterBlocked => {
            let max = MatmulTile::MAX_BLOCK;
            vec![tile(1, 1, 1, 1), tile(8, 4, 3, 5), tile(16, 16, max, max)]
        }
        MatmulStrategy::Shuffled => {
            let (rows, cols) = (MatmulTile::MAX_SHUFFLED_ROWS, MatmulTile::MAX_SHUFFLED_COLS);
            vec![tile(1, 1, 1, 1), tile(4, 1, 7, 3), tile(64, 1, rows, cols)]
        }
    };
    for m in [1, 64, 4096] {
        for n in (1..=300).chain([1024, 4096]) {
            for k in [1, 64, 4096] {
                tiles.push(MatmulTile::for_shape(strategy, MatmulShape { m, n, k }));
            }
        }
    }
    let mut distinct = Vec::new();
    for tile in tiles {
        assert!(
            tile.check(strategy).is_ok(),
            "{strategy:?} refuses {tile:?}"
        );
        if !distinct.contains(&tile) {
            distinct.push(tile);
        }
    }
    distinct
}

/// The override constants `shader`'s `entry_point` is given: those the kernels set
/// (`ActivationKernel::spec`, `OutputLayer::spec`, `MatmulTile::constants`), over every value.
fn constant_sets(shader: Shader, entry_point: &str) -> Vec<Vec<(&'static str, f64)>> {
    let code = |a: Activation| f64::from(a.wgsl_code());
    match (shader, entry_point) {
        // Softmax is row-wise and has kernels of its own, without the constant.
        (Shader::Activation, "forward" | "backward") => Activation::ALL
            .into_iter()
            .filter(|&a| a != Activation::Softmax)
            .map(|a| vec![("ACTIVATION", code(a))])
            .collect(),
        (Shader::Loss, _) => Loss::ALL
            .into_iter()
            .flat_map(|loss| {
                Activation::ALL.map(|a| {
                    vec![
                        ("LOSS", f64::from(loss.wgsl_code())),
                        ("ACTIVATION", code(a)),
                    ]
                })
            })
            .collect(),
        (Shader::Matmul, name) => match STRATEGIES
            .into_iter()
            .find(|&s| matmul_entry_point(s) == name)
        {
            Some(strategy) => matmul_tiles(strategy)
                .into_iter()
                .map(|tile| tile.constants(strategy))
                .collect(),
            None => vec![vec![]],
        },
        // The optimizer's rules, `Update::rule`'s codes.
        (Shader::Optim, "update" | "update_tensor") => {
            (0..4).map(|rule| vec![("RULE", f64::from(rule))]).collect()
        }
        (Shader::Data, "gather" | "gather_features" | "gather_targets") => {
            [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)]
                .into_iter()
                .map(|(features, targets)| {
                    vec![("FLOAT_FEATURES", features), ("VALUE_TARGETS", targets)]
                })
                .collect()
        }
        // Affine, elastic and both, on MNIST's 28×28.
        (Shader::Augment, "deform") => [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0)]
            .into_iter()
            .map(|(affine, elastic)| {
                let field = if elastic == 1.0 { 784.0 } else { 1.0 };
                vec![
                    ("PIXELS", 784.0),
                    ("FIELD_PIXELS", field),
                    ("AFFINE", affine),
                    ("ELASTIC", elastic),
                ]
            })
            .collect(),
        _ => vec![vec![]],
    }
}

/// Every pipeline of every entry point `module` has, so that none goes untranslated.
fn pipelines(shader: Shader, module: &Module) -> Vec<Pipeline> {
    let checks: &[bool] = if shader.guards_its_indices() {
        &[true, false]
    } else {
        &[true]
    };
    let mut pipelines = Vec::new();
    for entry_point in &module.entry_points {
        assert_eq!(
            entry_point.stage,
            ShaderStage::Compute,
            "{}",
            entry_point.name
        );
        for constants in constant_sets(shader, &entry_point.name) {
            for &checked in checks {
                pipelines.push(Pipeline {
                    entry_point: entry_point.name.clone(),
                    constants: constants.clone(),
                    checked,
                });
            }
        }
    }
    pipelines
}

/// A back end and the language version it is asked for.
#[derive(Clone, Copy, Debug)]
enum Target {
    Msl((u8, u8)),
    Hlsl(hlsl::ShaderModel),
    Spirv((u8, u8)),
    Glsl(glsl::Version),
}

impl Target {
    fn backend(self) -> &'static str {
        match self {
            Target::Msl(_) => "MSL",
            Target::Hlsl(_) => "HLSL",
            Target::Spirv(_) => "SPIR-V",
            Target::Glsl(_) => "GLSL",
        }
    }

    /// The oldest and newest versions wgpu-hal 30 picks for a device with or without subgroups.
    /// Metal: MSL 1.0 (its fallback for the oldest systems) to 4.0 (`metal/adapter.rs`);
    /// SUBGROUP needs the Mac2/Apple7 families and macOS 10.15 or iOS 13, so MSL 2.2 at least.
    /// DX12: shader model 5.1 through FXC to 6.9 through DXC (`dx12/adapter.rs`); SUBGROUP needs
    /// wave operations, 6.0 (naga writes them at any model; FXC would refuse them). Vulkan:
    /// SPIR-V 1.0 on Vulkan 1.0 to 1.6 on 1.3 (`vulkan/adapter.rs`); SUBGROUP needs Vulkan 1.1,
    /// so SPIR-V 1.3. GL: GLSL ES 3.10, the oldest with compute, and core 4.50, the newest wgpu
    /// asks for (`gles/adapter.rs` caps it there).
    fn all(subgroups: bool) -> [Target; 8] {
        let (msl, hlsl, spirv) = if subgroups {
            ((2, 2), hlsl::ShaderModel::V6_0, (1, 3))
        } else {
            ((1, 0), hlsl::ShaderModel::V5_1, (1, 0))
        };
        [
            Target::Msl(msl),
            Target::Msl((4, 0)),
            Target::Hlsl(hlsl),
            Target::Hlsl(hlsl::ShaderModel::V6_9),
            Target::Spirv(spirv),
            Target::Spirv((1, 6)),
            // wgpu's GL backend never reports SUBGROUP, so the code never builds the shuffled
            // kernel there; naga's GLSL writes it all the same (with GL_KHR_shader_subgroup),
            // and is asked to, since it costs nothing.
            Target::Glsl(glsl::Version::new_gles(310)),
            Target::Glsl(glsl::Version::Desktop(450)),
        ]
    }
}

mod backends;
use backends::{Bindings, translate};

/// Parses and validates `source` with the capabilities wgpu gives a device with `features`
/// (`wgpu_naga_bridge`, the mapping wgpu-core itself uses).
fn front_end(source: &str, features: wgpu::Features) -> Result<(Module, ModuleInfo), String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let info = wgpu_naga_bridge::create_validator(
        features,
        wgpu::DownlevelFlags::compliant(),
        ValidationFlags::all(),
    )
    .validate(&module)
    .map_err(|e| e.emit_to_string(source))?;
    Ok((module, info))
}

/// One module to translate: a shader with the source one configuration gives it.
struct Job {
    shader: Shader,
    config: KernelConfig,
    source: String,
}

/// What translating the jobs found: translations per back end, and every failure.
#[derive(Default)]
struct Tally {
    per_backend: BTreeMap<&'static str, usize>,
    entry_points: BTreeMap<(&'static str, String), usize>,
    failures: Vec<String>,
}

/// Parses, validates and translates every pipeline of `job` for every target.
fn run_job(job: &Job, tally: &Mutex<Tally>) {
    let Job {
        shader,
        config,
        source,
    } = job;
    let what = format!(
        "shaders/{}.wgsl (workgroup_size={}, subgroups={})",
        shader.stem(),
        config.workgroup_size,
        config.subgroups
    );
    let features = if config.subgroups {
        wgpu::Features::SUBGROUP
    } else {
        wgpu::Features::empty()
    };
    let (module, info) = match front_end(source, features) {
        Ok(parsed) => parsed,
        Err(e) => {
            return tally
                .lock()
                .unwrap()
                .failures
                .push(format!("{what}: WGSL: {e}"));
        }
    };
    let bindings = Bindings::of(&module);
    let mut local = Tally::default();
    for pipeline in pipelines(*shader, &module) {
        *local
            .entry_points
            .entry((shader.stem(), pipeline.entry_point.clone()))
            .or_default() += 1;
        for target in Target::all(config.subgroups) {
            match translate(
                &module,
                &info,
                &bindings,
                &pipeline,
                target,
                config.subgroups,
            ) {
                Ok(_) => *local.per_backend.entry(target.backend()).or_default() += 1,
                Err(e) => local
                    .failures
                    .push(format!("{what} {}: {target:?}: {e}", pipeline.label())),
            }
        }
    }
    let mut tally = tally.lock().unwrap();
    for (backend, count) in local.per_backend {
        *tally.per_backend.entry(backend).or_default() += count;
    }
    for (entry_point, count) in local.entry_points {
        *tally.entry_points.entry(entry_point).or_default() += count;
    }
    tally.failures.extend(local.failures);
}

/// Every distinct (shader, source) the configurations give.
fn jobs() -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
    for config in kernel_configs() {
        for shader in SHADERS {
            let source = shader.source(&config);
            if !jobs
                .iter()
                .any(|j| j.shader == shader && j.source == source)
            {
                jobs.push(Job {
                    shader,
                    config: config.clone(),
                    source,
                });
            }
        }
    }
    jobs
}

#[test]
fn every_kernel_translates_for_every_backend_in_every_configuration() {
    let jobs = jobs();
    // The grid reaches both sides of every switch in the sources: subgroups, and each
    // workgroup size a power of two from 1 to 256.
    for subgroups in [false, true] {
        for size in (0..=8).map(|p| 1u32 << p) {
            assert!(
                jobs.iter()
                    .any(|j| j.config.subgroups == subgroups && j.config.workgroup_size == size),
                "no configuration with subgroups={subgroups} and workgroup_size={size}"
            );
        }
    }
    let tally = Mutex::new(Tally::default());
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    run_job(job, &tally);
                }
            });
        }
    });
    let tally = tally.into_inner().unwrap();
    let shown: Vec<&String> = tally.failures.iter().take(20).collect();
    assert!(
        tally.failures.is_empty(),
        "{} translations failed; the first:\n{shown:#?}",
        tally.failures.len()
    );
    eprintln!(
        "{} modules; configurations translated per back end: {:?}",
        jobs.len(),
        tally.per_backend
    );
    for backend in ["MSL", "HLSL", "SPIR-V", "GLSL"] {
        assert!(
            tally.per_backend.get(backend).is_some_and(|&n| n > 0),
            "{backend}"
        );
    }
    // Every strategy's kernel was translated, the shuffled one included.
    for strategy in STRATEGIES {
        let key = ("matmul", matmul_entry_point(strategy).to_string());
        assert!(tally.entry_points.contains_key(&key), "{key:?}");
    }
}

#[test]
fn the_shuffled_kernel_needs_subgroups_and_joins_only_modules_that_have_them() {
    let config = |subgroups| {
        let info = wgpu::AdapterInfo::new(wgpu::DeviceType::Cpu, wgpu::Backend::Noop);
        let features = if subgroups {
            wgpu::Features::SUBGROUP
        } else {
            wgpu::Features::empty()
        };
        KernelConfig::for_adapter(&info, &wgpu::Limits::default(), features)
    };
    // Without subgroups the module has no shuffled kernel and validates without the capability.
    let plain = Shader::Matmul.source(&config(false));
    let (module, _) = front_end(&plain, wgpu::Features::empty()).unwrap();
    assert!(
        !module
            .entry_points
            .iter()
            .any(|ep| ep.name == "matmul_shuffled")
    );
    // With them it has one, which wgpu's validator refuses on a device without SUBGROUP: the
    // reason `Shader::source` adds it only where it can run.
    let shuffled = Shader::Matmul.source(&config(true));
    let error = front_end(&shuffled, wgpu::Features::empty()).unwrap_err();
    assert!(error.to_lowercase().contains("subgroup"), "{error}");
    let (module, info) = front_end(&shuffled, wgpu::Features::SUBGROUP).unwrap();
    // Every back end writes its own shuffle for it, and none for the register kernel it extends.
    let bindings = Bindings::of(&module);
    for (strategy, shuffles) in [
        (MatmulStrategy::Shuffled, true),
        (MatmulStrategy::RegisterBlocked, false),
    ] {
        let pipeline = pipelines(Shader::Matmul, &module)
            .into_iter()
            .find(|p| p.entry_point == matmul_entry_point(strategy))
            .unwrap();
        for target in Target::all(true) {
            let output = translate(&module, &info, &bindings, &pipeline, target, true).unwrap();
            assert_eq!(output.shuffles(), shuffles, "{strategy:?} for {target:?}");
        }
    }
}

#[test]
fn glsl_es_3_00_cannot_express_a_compute_kernel() {
    // WebGL2's GLSL ES 3.00 has no compute shaders, so wgpu's GL backend without
    // COMPUTE_SHADERS cannot build any of these kernels; naga says so rather than writing one.
    let config = kernel_configs().remove(0);
    let source = Shader::Transpose.source(&config);
    let (module, info) = front_end(&source, wgpu::Features::empty()).unwrap();
    let pipeline = &pipelines(Shader::Transpose, &module)[0];
    let target = Target::Glsl(glsl::Version::new_gles(300));
    let error = translate(
        &module,
        &info,
        &Bindings::of(&module),
        pipeline,
        target,
        false,
    )
    .unwrap_err();
    assert!(error.contains("COMPUTE_SHADER"), "{error}");
}
