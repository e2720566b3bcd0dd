//! naga's four back ends called as wgpu-hal 30 calls them: override constants resolved per
//! pipeline by `process_overrides`, then the options each platform's `device.rs` builds from the
//! pipeline layout (a uniform at binding 0, storage buffers after it) and the module's runtime
//! checks. The kernels set `zero_initialize_workgroup_memory: false`, so no back end zeroes
//! workgroup memory.

use std::borrow::Cow;

use naga::back::{PipelineConstants, glsl, hlsl, msl, spv};
use naga::proc::{BoundsCheckPolicies, BoundsCheckPolicy};
use naga::valid::ModuleInfo;
use naga::{AddressSpace, Module, ResourceBinding, ShaderStage, StorageAccess};

use super::{Pipeline, Target};

/// A module's buffer bindings in binding order, each with whether it is a uniform and whether it
/// is written: what the pipeline layout the kernels build declares (it must match the shader,
/// or wgpu refuses the pipeline).
pub(super) struct Bindings(Vec<(ResourceBinding, Kind)>);

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Uniform,
    Read,
    ReadWrite,
}

impl Bindings {
    pub(super) fn of(module: &Module) -> Bindings {
        let mut bindings: Vec<(ResourceBinding, Kind)> = Vec::new();
        for (_, global) in module.global_variables.iter() {
            let kind = match global.space {
                AddressSpace::Uniform => Kind::Uniform,
                AddressSpace::Storage { access } if access.contains(StorageAccess::STORE) => {
                    Kind::ReadWrite
                }
                AddressSpace::Storage { .. } => Kind::Read,
                _ => continue,
            };
            // Entry points of one module may each declare the same binding.
            if let Some(binding) = global.binding
                && !bindings.iter().any(|(b, _)| *b == binding)
            {
                bindings.push((binding, kind));
            }
        }
        bindings.sort_by_key(|(b, _)| (b.group, b.binding));
        Bindings(bindings)
    }
}

/// Translates `pipeline` of `module` for `target`; the error names the stage that failed.
pub(super) fn translate(
    module: &Module,
    info: &ModuleInfo,
    bindings: &Bindings,
    pipeline: &Pipeline,
    target: Target,
    subgroups: bool,
) -> Result<Output, String> {
    let (module, info) = resolve(module, info, pipeline)?;
    let stage = Stage {
        module: &module,
        info: &info,
        bindings,
        ep: &pipeline.entry_point,
        checked: pipeline.checked,
    };
    match target {
        Target::Msl(version) => write_msl(&stage, version).map(Output::Text),
        Target::Hlsl(model) => write_hlsl(&stage, model).map(Output::Text),
        Target::Spirv(version) => write_spirv(&stage, version, subgroups).map(Output::Words),
        Target::Glsl(version) => write_glsl(&stage, version).map(Output::Text),
    }
}

/// What a back end wrote.
#[derive(Debug)]
pub(super) enum Output {
    /// MSL, HLSL or GLSL source.
    Text(String),
    /// A SPIR-V binary.
    Words(Vec<u32>),
}

impl Output {
    /// Whether the output calls the shuffle of its language: the SPIR-V instruction is found by
    /// walking the binary, whose instructions start after a 5-word header with their length.
    pub(super) fn shuffles(&self) -> bool {
        const OP_GROUP_NON_UNIFORM_SHUFFLE: u32 = 345;
        match self {
            Output::Text(text) => ["simd_shuffle(", "WaveReadLaneAt(", "subgroupShuffle("]
                .iter()
                .any(|call| text.contains(call)),
            Output::Words(words) => {
                let mut at = 5;
                while let Some(&word) = words.get(at) {
                    if word & 0xffff == OP_GROUP_NON_UNIFORM_SHUFFLE {
                        return true;
                    }
                    at += (word >> 16).max(1) as usize;
                }
                false
            }
        }
    }
}

/// A pipeline's module with its overrides resolved, and what every back end is told of it.
struct Stage<'a> {
    module: &'a Module,
    info: &'a ModuleInfo,
    bindings: &'a Bindings,
    ep: &'a str,
    /// wgpu's runtime checks are in ([`Pipeline::checked`]).
    checked: bool,
}

/// Resolves `pipeline`'s override constants as wgpu-hal does before any back end.
fn resolve<'a>(
    module: &'a Module,
    info: &'a ModuleInfo,
    pipeline: &Pipeline,
) -> Result<(Cow<'a, Module>, Cow<'a, ModuleInfo>), String> {
    let constants: PipelineConstants = pipeline
        .constants
        .iter()
        .map(|&(name, value)| (name.to_string(), value))
        .collect();
    naga::back::pipeline_constants::process_overrides(
        module,
        info,
        Some((ShaderStage::Compute, &pipeline.entry_point)),
        &constants,
    )
    .map_err(|e| format!("override constants: {e:?}"))
}

/// The policies wgpu-hal gives MSL, HLSL and SPIR-V: `Restrict` with the runtime checks in
/// (Vulkan leaves buffers to `robustBufferAccess2` where a device has it; `Restrict` is the
/// other case, which writes more code), `Unchecked` without.
fn policies(checked: bool) -> BoundsCheckPolicies {
    let policy = if checked {
        BoundsCheckPolicy::Restrict
    } else {
        BoundsCheckPolicy::Unchecked
    };
    BoundsCheckPolicies {
        index: policy,
        buffer: policy,
        image_load: policy,
        binding_array: BoundsCheckPolicy::Unchecked,
    }
}

/// `metal/device.rs` (`load_shader`, `create_pipeline_layout`): buffers in binding order from
/// slot 0, the sizes buffer after them, no fake bindings.
fn write_msl(stage: &Stage<'_>, lang_version: (u8, u8)) -> Result<String, String> {
    let mut resources = msl::BindingMap::default();
    for (slot, &(binding, kind)) in stage.bindings.0.iter().enumerate() {
        let target = msl::BindTarget {
            buffer: Some(slot as msl::Slot),
            mutable: kind == Kind::ReadWrite,
            ..Default::default()
        };
        resources.insert(binding, target);
    }
    let has_storage = stage
        .bindings
        .0
        .iter()
        .any(|&(_, kind)| kind != Kind::Uniform);
    let entry_point = msl::EntryPointResources {
        resources,
        immediates_buffer: None,
        sizes_buffer: has_storage.then_some(stage.bindings.0.len() as msl::Slot),
    };
    let options = msl::Options {
        lang_version,
        inline_samplers: Vec::new(),
        spirv_cross_compatibility: false,
        fake_missing_bindings: false,
        per_entry_point_map: msl::EntryPointResourceMap::from([(
            stage.ep.to_string(),
            entry_point,
        )]),
        bounds_check_policies: policies(stage.checked),
        zero_initialize_workgroup_memory: false,
        force_loop_bounding: stage.checked,
        // Task shaders only.
        task_dispatch_limits: None,
        mesh_shader_primitive_indices_clamp: stage.checked,
        emit_int_div_checks: stage.checked,
        ray_query_initialization_tracking: stage.checked,
    };
    let pipeline_options = msl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, stage.ep.to_string())),
        allow_and_force_point_size: false,
        vertex_pulling_transform: true,
        vertex_buffer_mappings: Vec::new(),
        binding_array_length_map: Default::default(),
    };
    msl::write_string(stage.module, stage.info, &options, &pipeline_options)
        .map(|(source, _)| source)
        .map_err(|e| format!("{e:?}"))
}

/// `dx12/device.rs` (`load_shader`, `create_pipeline_layout`): CBV, SRV and UAV registers
/// counted apart in space 0, and the special constants (wgpu-core always asks for
/// `NUM_WORK_GROUPS`) in the CBV register after the bind group's.
fn write_hlsl(stage: &Stage<'_>, shader_model: hlsl::ShaderModel) -> Result<String, String> {
    let mut binding_map = hlsl::BindingMap::default();
    let (mut cbv, mut srv, mut uav) = (0, 0, 0);
    for &(binding, kind) in &stage.bindings.0 {
        let register = match kind {
            Kind::Uniform => &mut cbv,
            Kind::Read => &mut srv,
            Kind::ReadWrite => &mut uav,
        };
        let target = hlsl::BindTarget {
            register: *register,
            ..Default::default()
        };
        binding_map.insert(binding, target);
        *register += 1;
    }
    let options = hlsl::Options {
        shader_model,
        binding_map,
        fake_missing_bindings: false,
        special_constants_binding: Some(hlsl::BindTarget {
            register: cbv,
            ..Default::default()
        }),
        zero_initialize_workgroup_memory: false,
        restrict_indexing: stage.checked,
        force_loop_bounding: stage.checked,
        mesh_shader_primitive_indices_clamp: stage.checked,
        ray_query_initialization_tracking: stage.checked,
        ..Default::default()
    };
    let pipeline_options = hlsl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, stage.ep.to_string())),
    };
    let mut source = String::new();
    let reflection = hlsl::Writer::new(&mut source, &options, &pipeline_options)
        .write(stage.module, stage.info, None)
        .map_err(|e| format!("{e:?}"))?;
    match reflection.entry_point_names.as_slice() {
        [Ok(_)] => Ok(source),
        names => Err(format!("entry points written: {names:?}")),
    }
}

/// `vulkan/adapter.rs` (the device's `naga_options`) and `vulkan/device.rs` (`compile_stage`,
/// the layouts' binding maps): the capabilities every Vulkan device has, the subgroup ones with
/// SUBGROUP, release-build writer flags, each group a descriptor set numbered in binding order.
fn write_spirv(
    stage: &Stage<'_>,
    lang_version: (u8, u8),
    subgroups: bool,
) -> Result<Vec<u32>, String> {
    use spv::Capability as C;
    let mut capabilities = vec![
        C::Shader,
        C::Matrix,
        C::Sampled1D,
        C::Image1D,
        C::ImageQuery,
        C::DerivativeControl,
        C::StorageImageExtendedFormats,
        C::SampledCubeArray,
        C::SampleRateShading,
    ];
    if subgroups {
        capabilities.extend([
            C::GroupNonUniform,
            C::GroupNonUniformVote,
            C::GroupNonUniformArithmetic,
            C::GroupNonUniformBallot,
            C::GroupNonUniformShuffle,
            C::GroupNonUniformShuffleRelative,
            C::GroupNonUniformQuad,
        ]);
    }
    let mut binding_map = spv::BindingMap::default();
    for &(binding, _) in &stage.bindings.0 {
        let in_set = stage
            .bindings
            .0
            .iter()
            .filter(|(b, _)| b.group == binding.group);
        let index = in_set.take_while(|(b, _)| *b != binding).count() as u32;
        let target = spv::BindingInfo {
            descriptor_set: binding.group,
            binding: index,
            binding_array_size: None,
        };
        binding_map.insert(binding, target);
    }
    let options = spv::Options {
        lang_version,
        flags: spv::WriterFlags::LABEL_VARYINGS | spv::WriterFlags::FORCE_POINT_SIZE,
        fake_missing_bindings: false,
        binding_map,
        capabilities: Some(capabilities.into_iter().collect()),
        bounds_check_policies: policies(stage.checked),
        zero_initialize_workgroup_memory: spv::ZeroInitializeWorkgroupMemoryMode::None,
        force_loop_bounding: stage.checked,
        ray_query_initialization_tracking: stage.checked,
        trace_ray_argument_validation: true,
        use_storage_input_output_16: false,
        debug_info: None,
        task_dispatch_limits: None,
        mesh_shader_primitive_indices_clamp: stage.checked,
        emit_int_div_checks: stage.checked,
    };
    let pipeline_options = spv::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: stage.ep.to_string(),
    };
    spv::write_vec(stage.module, stage.info, &options, Some(&pipeline_options))
        .map_err(|e| format!("{e:?}"))
}

/// `gles/device.rs` (`create_shader`, `create_pipeline_layout`): uniform and storage blocks
/// counted apart, and no bounds checks whatever the module asks (GL has no image loads here,
/// and wgpu leaves the rest to the driver).
fn write_glsl(stage: &Stage<'_>, version: glsl::Version) -> Result<String, String> {
    let mut binding_map = glsl::BindingMap::default();
    let (mut uniforms, mut storage) = (0, 0);
    for &(binding, kind) in &stage.bindings.0 {
        let counter = if kind == Kind::Uniform {
            &mut uniforms
        } else {
            &mut storage
        };
        binding_map.insert(binding, *counter);
        *counter += 1;
    }
    let options = glsl::Options {
        version,
        writer_flags: glsl::WriterFlags::ADJUST_COORDINATE_SPACE
            | glsl::WriterFlags::FORCE_POINT_SIZE,
        binding_map,
        zero_initialize_workgroup_memory: false,
    };
    let pipeline_options = glsl::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: stage.ep.to_string(),
        multiview: None,
    };
    let mut source = String::new();
    glsl::Writer::new(
        &mut source,
        stage.module,
        stage.info,
        &options,
        &pipeline_options,
        policies(false),
    )
    .and_then(|mut writer| writer.write())
    .map_err(|e| format!("{e:?}"))?;
    Ok(source)
}
