//! [`GpuOptions`]: the limits, optional features and matmul kernel a device is opened with, so
//! that one adapter can run as a weaker device would (WebGPU's guaranteed limits, no subgroups),
//! from the library or from the environment (`WGPU_MLP_LIMITS`, `WGPU_MLP_FEATURES`,
//! `WGPU_MLP_MATMUL`).

use crate::error::{Error, Result};
use crate::gpu::kernels::MatmulStrategy;

/// Which limits the device is opened with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LimitsPreset {
    /// The adapter's own limits: what large layers need.
    #[default]
    Adapter,
    /// wgpu's `Limits::default()`, the limits WebGPU guarantees, each capped at the adapter's.
    WebGpu,
    /// wgpu's `Limits::downlevel_defaults()` (WebGPU's with 4 storage buffers per stage and
    /// 16,352 bytes of workgroup storage), each capped at the adapter's.
    Downlevel,
    /// WebGPU's compatibility mode (`featureLevel: "compatibility"`, for D3D11 and GLES 3.1
    /// devices) as the WebGPU specification lists its defaults ([`compat_limits`]), each capped
    /// at the adapter's.
    Compat,
}

/// WebGPU's guaranteed limits as compatibility mode lowers them: 128 invocations per workgroup
/// (128 × 128 × 64), 16 KiB uniform bindings, 4,096-texel 1-D and 2-D textures, 15 inter-stage
/// variables and 4 colour attachments. Compute keeps 8 storage buffers per stage: compatibility
/// mode lowers only the vertex stage's (to 0) and the fragment stage's (to 4), which wgpu's one
/// per-stage limit cannot express.
pub fn compat_limits() -> wgpu::Limits {
    // The "Compatibility Mode Default" column of https://www.w3.org/TR/webgpu/#limits
    // (gpuweb/gpuweb spec/index.bs at da251f9; proposals/compatibility-mode.md §10 and §19).
    wgpu::Limits {
        max_texture_dimension_1d: 4096,
        max_texture_dimension_2d: 4096,
        max_uniform_buffer_binding_size: 16 << 10,
        max_inter_stage_shader_variables: 15,
        max_color_attachments: 4,
        max_compute_invocations_per_workgroup: 128,
        max_compute_workgroup_size_x: 128,
        max_compute_workgroup_size_y: 128,
        ..wgpu::Limits::defaults()
    }
}

/// Which of the optional features the kernels can use (subgroups) are requested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FeatureMask {
    /// Every one the adapter has.
    #[default]
    All,
    /// None: the kernels are chosen as on a device without subgroups. Timestamp queries, which
    /// change no kernel and only time passes for `--profile`, stay where the adapter has them.
    None,
}

/// How [`Gpu::with_options`](crate::Gpu::with_options) opens a device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GpuOptions {
    /// The limits.
    pub limits: LimitsPreset,
    /// The optional features.
    pub features: FeatureMask,
    /// The matmul kernel, instead of the one [`KernelConfig::for_adapter`] chooses; one the
    /// device cannot run makes opening it an error.
    ///
    /// [`KernelConfig::for_adapter`]: crate::gpu::kernels::KernelConfig::for_adapter
    pub matmul: Option<MatmulStrategy>,
}

/// The optional features the kernels use where the adapter has them: timestamps for `--profile`,
/// subgroups for the shuffled matmul.
const OPTIONAL_FEATURES: wgpu::Features =
    wgpu::Features::TIMESTAMP_QUERY.union(wgpu::Features::SUBGROUP);

impl LimitsPreset {
    /// The limits to open a device with on an adapter that has `adapter`'s: never more than it
    /// has, since asking for more makes opening the device fail.
    pub fn limits(self, adapter: &wgpu::Limits) -> wgpu::Limits {
        match self {
            LimitsPreset::Adapter => adapter.clone(),
            LimitsPreset::WebGpu => wgpu::Limits::default().or_worse_values_from(adapter),
            LimitsPreset::Downlevel => {
                wgpu::Limits::downlevel_defaults().or_worse_values_from(adapter)
            }
            LimitsPreset::Compat => compat_limits().or_worse_values_from(adapter),
        }
    }
}

impl FeatureMask {
    /// The features to request of an adapter that has `adapter`'s.
    pub fn features(self, adapter: wgpu::Features) -> wgpu::Features {
        match self {
            FeatureMask::All => adapter & OPTIONAL_FEATURES,
            FeatureMask::None => adapter & wgpu::Features::TIMESTAMP_QUERY,
        }
    }
}

/// The environment variable `name`, one of `accepted`; unset or empty is `None`.
fn env_choice<T: Copy>(name: &str, accepted: &[(&str, T)]) -> Result<Option<T>> {
    match std::env::var_os(name) {
        Some(value) => choice(name, &value.to_string_lossy(), accepted),
        None => Ok(None),
    }
}

/// `value`, the setting `name`, as one of `accepted` (any case); empty is `None`.
fn choice<T: Copy>(name: &str, value: &str, accepted: &[(&str, T)]) -> Result<Option<T>> {
    if value.is_empty() {
        return Ok(None);
    }
    let found = accepted
        .iter()
        .find(|(word, _)| word.eq_ignore_ascii_case(value));
    match found {
        Some(&(_, choice)) => Ok(Some(choice)),
        None => {
            let words: Vec<&str> = accepted.iter().map(|(word, _)| *word).collect();
            Err(Error::invalid(
                name,
                format!("{value:?}: expected one of {}", words.join(", ")),
            ))
        }
    }
}

impl GpuOptions {
    /// The options the environment sets: `WGPU_MLP_LIMITS` (adapter, webgpu, compat or
    /// downlevel),
    /// `WGPU_MLP_FEATURES` (all or none) and `WGPU_MLP_MATMUL` (auto, tiled, register or
    /// shuffled); unset means the adapter's limits, all features and the adapter's kernel. Any
    /// other value is an error naming the variable and the values it takes.
    pub fn from_env() -> Result<GpuOptions> {
        let limits = env_choice(
            "WGPU_MLP_LIMITS",
            &[
                ("adapter", LimitsPreset::Adapter),
                ("webgpu", LimitsPreset::WebGpu),
                ("compat", LimitsPreset::Compat),
                ("downlevel", LimitsPreset::Downlevel),
            ],
        )?;
        let features = env_choice(
            "WGPU_MLP_FEATURES",
            &[("all", FeatureMask::All), ("none", FeatureMask::None)],
        )?;
        let matmul = env_choice(
            "WGPU_MLP_MATMUL",
            &[
                ("auto", None),
                ("tiled", Some(MatmulStrategy::Tiled)),
                ("register", Some(MatmulStrategy::RegisterBlocked)),
                ("shuffled", Some(MatmulStrategy::Shuffled)),
            ],
        )?;
        Ok(GpuOptions {
            limits: limits.unwrap_or_default(),
            features: features.unwrap_or_default(),
            matmul: matmul.flatten(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_never_ask_for_more_than_the_adapter_has() {
        let adapter = wgpu::Limits {
            max_compute_workgroup_storage_size: 8192,
            max_storage_buffers_per_shader_stage: 16,
            min_storage_buffer_offset_alignment: 512,
            ..wgpu::Limits::default()
        };
        for preset in [
            LimitsPreset::WebGpu,
            LimitsPreset::Compat,
            LimitsPreset::Downlevel,
        ] {
            let limits = preset.limits(&adapter);
            assert_eq!(limits.max_compute_workgroup_storage_size, 8192);
            assert_eq!(limits.min_storage_buffer_offset_alignment, 512);
            assert!(limits.check_limits(&adapter), "{preset:?}");
        }
        assert_eq!(
            LimitsPreset::WebGpu
                .limits(&adapter)
                .max_storage_buffers_per_shader_stage,
            8
        );
        assert_eq!(
            LimitsPreset::Downlevel
                .limits(&adapter)
                .max_storage_buffers_per_shader_stage,
            4
        );
        // Compatibility mode: WebGPU's, with 128 invocations and compute's 8 storage buffers.
        let compat = LimitsPreset::Compat.limits(&adapter);
        assert_eq!(compat.max_storage_buffers_per_shader_stage, 8);
        assert_eq!(compat.max_texture_dimension_3d, 2048);
        assert_eq!(compat.max_compute_invocations_per_workgroup, 128);
        assert_eq!(
            [
                compat.max_compute_workgroup_size_x,
                compat.max_compute_workgroup_size_y,
                compat.max_compute_workgroup_size_z
            ],
            [128, 128, 64]
        );
        assert_eq!(compat.max_uniform_buffer_binding_size, 16_384);
        assert_eq!(LimitsPreset::Adapter.limits(&adapter), adapter);
        let adapter_features = wgpu::Features::SUBGROUP | wgpu::Features::SHADER_F16;
        assert_eq!(
            FeatureMask::All.features(adapter_features),
            wgpu::Features::SUBGROUP
        );
        assert!(FeatureMask::None.features(adapter_features).is_empty());
        let with_timestamps = adapter_features | wgpu::Features::TIMESTAMP_QUERY;
        assert_eq!(
            FeatureMask::None.features(with_timestamps),
            wgpu::Features::TIMESTAMP_QUERY
        );
    }

    #[test]
    fn settings_take_their_words_in_any_case_and_refuse_others_by_name() {
        let accepted = [
            ("webgpu", LimitsPreset::WebGpu),
            ("adapter", LimitsPreset::Adapter),
        ];
        let parse = |value| choice("WGPU_MLP_LIMITS", value, &accepted);
        assert_eq!(parse("WebGPU").unwrap(), Some(LimitsPreset::WebGpu));
        assert_eq!(parse("").unwrap(), None);
        let error = parse("webgl").unwrap_err().to_string();
        assert!(
            error.contains("WGPU_MLP_LIMITS")
                && error.contains("\"webgl\": expected one of webgpu, adapter"),
            "{error}"
        );
    }
}
