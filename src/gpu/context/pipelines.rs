//! Shader modules, bind group layouts and compute pipelines, each created once per
//! [`Gpu`] and cached: a network asks for all of its pipelines when it is built, in parallel, so
//! none is compiled during training.

use std::collections::HashMap;

use crate::error::Result;
use crate::gpu::context::Gpu;
use crate::gpu::kernels::{KernelNeeds, Shader};

/// The bindings of a kernel's bind group, in binding order. Binding 0 is always the kernel's
/// uniform parameter block; the rest are storage buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
    /// Declared in the module but not used by this entry point: left out of its layout, since a
    /// device counts the storage buffers of the layout against its per-stage limit.
    Unused,
}

/// The storage buffers a binding list puts in a layout.
pub(crate) fn bound_count(storage: &[Access]) -> u32 {
    storage.iter().filter(|a| **a != Access::Unused).count() as u32
}

/// A compute pipeline to build: a shader's entry point, its override constants and the access of
/// each storage binding after the uniform at binding 0.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PipelineSpec {
    pub shader: Shader,
    pub entry_point: &'static str,
    pub constants: Vec<(&'static str, f64)>,
    pub storage: &'static [Access],
}

impl PipelineSpec {
    /// `matmul.main[TILE_M=64,…]`: names the pipeline in labels and errors, and keys the cache,
    /// since a shader, an entry point and its constants make one pipeline.
    fn label(&self) -> String {
        let constants: Vec<String> = self
            .constants
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{}.{}[{}]",
            self.shader.stem(),
            self.entry_point,
            constants.join(",")
        )
    }
}

impl Gpu {
    /// The shader module of `shader`, compiled on first request and cached.
    fn module(&self, shader: Shader) -> Result<wgpu::ShaderModule> {
        let mut modules = self.inner.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(module) = modules.get(&shader) {
            return Ok(module.clone());
        }
        let source = shader.source(&self.inner.config);
        let module = self.checked(
            &format!("compiling shaders/{}.wgsl", shader.stem()),
            |device| {
                let descriptor = wgpu::ShaderModuleDescriptor {
                    label: Some(shader.stem()),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                };
                if shader.guards_its_indices() && !self.inner.config.bounds_checks {
                    // SAFETY: the kernels clamp every load into their operands and guard every
                    // store, parts of a split product included (see matmul.wgsl), and the host
                    // sizes each buffer for the shape it binds (`Matmul::bind` checks the shape
                    // and the parts), so the checks wgpu would insert can never fire; they are
                    // left out because they slow the matmul down (see BENCHMARKS.md), and
                    // `KernelConfig::bounds_checks` puts them back.
                    unsafe {
                        device.create_shader_module_trusted(
                            descriptor,
                            wgpu::ShaderRuntimeChecks::unchecked(),
                        )
                    }
                } else {
                    device.create_shader_module(descriptor)
                }
            },
        )?;
        modules.insert(shader, module.clone());
        Ok(module)
    }

    /// The bind group layout for a uniform at binding 0 followed by `storage` bindings, and the
    /// pipeline layout around it; one of each per distinct binding list.
    pub(crate) fn layouts(
        &self,
        storage: &[Access],
    ) -> Result<(wgpu::BindGroupLayout, wgpu::PipelineLayout)> {
        let mut layouts = self.inner.layouts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pair) = layouts.get(storage) {
            return Ok(pair.clone());
        }
        let compute = wgpu::ShaderStages::COMPUTE;
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: compute,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, access) in storage.iter().enumerate() {
            if *access == Access::Unused {
                continue;
            }
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: compute,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: *access == Access::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let name: String = storage
            .iter()
            .map(|a| match a {
                Access::Read => 'r',
                Access::ReadWrite => 'w',
                Access::Unused => '_',
            })
            .collect();
        let pair = self.checked("creating a bind group layout", |device| {
            let bind_group_layout =
                device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(&format!("bindings u{name}")),
                    entries: &entries,
                });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&format!("pipeline layout u{name}")),
                bind_group_layouts: &[Some(&bind_group_layout)],
                immediate_size: 0,
            });
            (bind_group_layout, pipeline_layout)
        })?;
        layouts.insert(storage.to_vec(), pair.clone());
        Ok(pair)
    }

    /// Creates the pipelines of `specs` that are not cached yet, on a thread each (one after
    /// the other in a browser). A GPU driver
    /// compiles a pipeline when it is created, and a matmul tile is one of the slower ones to
    /// compile, so a network that binds several tiles waits for the slowest instead of their
    /// sum. (wgpu's error scopes are per thread, so each creation is checked on its own.)
    pub(crate) fn prepare_pipelines(&self, specs: &[PipelineSpec]) -> Result<()> {
        let missing: HashMap<String, &PipelineSpec> = {
            let cached = self
                .inner
                .pipelines
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            specs
                .iter()
                .map(|spec| (spec.label(), spec))
                .filter(|(key, _)| !cached.contains_key(key))
                .collect()
        };
        // Modules and layouts first, once each, so that the threads only create pipelines.
        for spec in missing.values() {
            self.check_bindings(spec)?;
            self.module(spec.shader)?;
            self.layouts(spec.storage)?;
        }
        #[cfg(not(target_arch = "wasm32"))]
        return std::thread::scope(|scope| {
            let threads: Vec<_> = missing
                .values()
                .map(|spec| scope.spawn(move || self.pipeline(spec).map(drop)))
                .collect();
            threads.into_iter().try_for_each(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
        });
        // A browser has no threads here, and compiles its pipelines off the page's thread anyway.
        #[cfg(target_arch = "wasm32")]
        missing
            .values()
            .try_for_each(|spec| self.pipeline(spec).map(drop))
    }

    /// Whether the device can bind `spec`'s buffers: an error naming the kernel and the limit
    /// (storage buffers per stage, bind groups) if not, rather than a failed layout.
    fn check_bindings(&self, spec: &PipelineSpec) -> Result<()> {
        let needs = KernelNeeds {
            workgroup_size: [1, 1, 1],
            workgroup_storage: 0,
            storage_buffers: bound_count(spec.storage),
        };
        self.inner
            .config
            .check_needs(|| format!("kernel {}", spec.label()), needs)
    }

    /// The pipeline for `spec`, compiled on first request and cached.
    pub(crate) fn pipeline(&self, spec: &PipelineSpec) -> Result<wgpu::ComputePipeline> {
        let key = spec.label();
        if let Some(pipeline) = self
            .inner
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(pipeline.clone());
        }
        self.check_bindings(spec)?;
        let module = self.module(spec.shader)?;
        let (_, layout) = self.layouts(spec.storage)?;
        let label = spec.label();
        let pipeline = self.checked(&format!("creating pipeline {label}"), |device| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: Some(&layout),
                module: &module,
                entry_point: Some(spec.entry_point),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &spec.constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
        })?;
        self.inner
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, pipeline.clone());
        Ok(pipeline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::context::AdapterChoice;

    #[test]
    fn pipelines_prepared_in_parallel_are_cached_once_and_failures_are_errors() {
        let gpu = Gpu::new(AdapterChoice::Auto).unwrap();
        let matmul = |entry_point, block: f64| PipelineSpec {
            shader: Shader::Matmul,
            entry_point,
            constants: vec![("MM_BLOCK_M", block)],
            storage: crate::gpu::kernels::matmul::STORAGE,
        };
        let cached = |gpu: &Gpu| gpu.inner.pipelines.lock().unwrap().len();
        // Two distinct pipelines, one of them asked for twice.
        let specs = [
            matmul("matmul_register", 2.0),
            matmul("matmul_register", 4.0),
            matmul("matmul_register", 2.0),
        ];
        gpu.prepare_pipelines(&specs).unwrap();
        assert_eq!(cached(&gpu), 2);
        // Prepared pipelines are the ones later asked for: nothing new is created.
        gpu.pipeline(&specs[1]).unwrap();
        assert_eq!(cached(&gpu), 2);

        // A pipeline that cannot be created is an error naming it, whichever thread made it.
        let error = gpu
            .prepare_pipelines(&[
                matmul("matmul_register", 8.0),
                matmul("no_such_entry_point", 8.0),
            ])
            .unwrap_err();
        assert!(error.to_string().contains("no_such_entry_point"), "{error}");
    }
}
