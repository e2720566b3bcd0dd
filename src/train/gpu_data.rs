//! A data set on the GPU as the trainer's gathers read it: resident in one buffer, split into
//! chunks of one binding each, or streamed from the host.
//!
//! A data set that fits one storage binding is one buffer. A larger one is split by samples
//! into chunks of at most a binding each, and each chunk's gather writes the batch rows it holds
//! (`shaders/data.wgsl`). Beyond [`RESIDENT_CHUNKS`] chunks the data stays on the host: before
//! each submission the host gathers the submission's samples, in the epoch's order, into one of
//! two slabs, and the GPU gathers from the slab as it would from the whole set, so the three
//! placements train to the same weights, bit for bit. The slab is written while the GPU still
//! runs the previous submission, which reads the other slab.

use std::sync::Arc;

use super::STEPS_PER_SUBMIT;
use crate::augment::Augmentation;
use crate::data::{Dataset, Features, Targets};
use crate::error::{Error, Result};
use crate::gpu::context::Gpu;
use crate::gpu::kernels::augment::{Deform, DeformBuffers};
use crate::gpu::kernels::data::{ChunkSpan, Gather, GatherBuffers, GatherShape};
use crate::gpu::kernels::{Dispatch, Recorder};

/// Under [`DataPlacement::Auto`], a data set needing more chunks than this is streamed.
pub const RESIDENT_CHUNKS: usize = 8;

/// Where a data set's samples live while the GPU trains or evaluates on them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum DataPlacement {
    /// Resident when it fits [`RESIDENT_CHUNKS`] storage bindings, streamed otherwise.
    #[default]
    Auto,
    /// On the GPU, in as many chunks as the binding limit asks for.
    Resident,
    /// On the host, copied to the GPU a submission's samples at a time.
    Streamed,
}

/// A data set the trainer was given: borrowed when it is only uploaded, shared when the trainer
/// keeps it to stream from.
#[derive(Clone, Debug)]
pub(super) enum HostData<'a> {
    Borrowed(&'a Dataset),
    Shared(Arc<Dataset>),
}

impl HostData<'_> {
    pub(super) fn get(&self) -> &Dataset {
        match self {
            HostData::Borrowed(data) => data,
            HostData::Shared(data) => data,
        }
    }

    fn into_shared(self) -> Arc<Dataset> {
        match self {
            HostData::Borrowed(data) => Arc::new(data.clone()),
            HostData::Shared(data) => data,
        }
    }
}

/// The bytes of samples `first..first + count`'s features, as the GPU stores them.
fn feature_bytes(features: &Features, first: usize, count: usize) -> &[u8] {
    let width = features.width();
    let range = first * width..(first + count) * width;
    match features {
        Features::Bytes(x) => &x.as_slice().expect("standard layout")[range],
        Features::Floats(x) => bytemuck::cast_slice(&x.as_slice().expect("standard layout")[range]),
    }
}

/// The bytes of samples `first..first + count`'s targets, as the GPU stores them.
fn target_bytes(targets: &Targets, first: usize, count: usize) -> &[u8] {
    match targets {
        Targets::Classes { labels, .. } => {
            let labels = labels.as_slice().expect("standard layout");
            bytemuck::cast_slice(&labels[first..first + count])
        }
        Targets::Values(values) => {
            let width = values.ncols();
            let values = values.as_slice().expect("standard layout");
            bytemuck::cast_slice(&values[first * width..(first + count) * width])
        }
    }
}

/// A storage buffer of `bytes` rounded up to whole words, filled with them.
fn upload_bytes(gpu: &Gpu, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer> {
    let buffer = gpu.storage_buffer(label, bytes.len().div_ceil(4))?;
    let whole = bytes.len() / 4 * 4;
    gpu.queue().write_buffer(&buffer, 0, &bytes[..whole]);
    if whole < bytes.len() {
        let mut tail = [0u8; 4];
        tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
        gpu.queue().write_buffer(&buffer, whole as u64, &tail);
    }
    Ok(buffer)
}

/// The most bytes one storage buffer may bind, in whole words.
fn binding_bytes(gpu: &Gpu) -> usize {
    let limits = gpu.limits();
    let binding = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    (binding / 4 * 4) as usize
}

/// Samples per chunk whose features and targets each fit one storage binding, at least one.
fn samples_per_chunk(gpu: &Gpu, dataset: &Dataset) -> usize {
    let target_bytes = 4 * dataset.outputs();
    let target_bytes = if dataset.is_classification() {
        4
    } else {
        target_bytes
    };
    let per_sample = dataset.features.bytes_per_sample().max(target_bytes);
    // Whole words: a chunk's last word may hold padding, never the next chunk's bytes.
    (binding_bytes(gpu) / per_sample.max(1)).max(1)
}

/// A slab the host fills with a submission's samples, and the gather bound to it.
struct Slab {
    features: wgpu::Buffer,
    targets: wgpu::Buffer,
    gather: Dispatch,
    /// With deformations: each slab row's index in the data set, which the deformation draws by
    /// (the slab's own order is the identity).
    sample_ids: Option<wgpu::Buffer>,
}

enum Storage {
    Resident {
        /// Each chunk's features and targets.
        _chunks: Vec<(wgpu::Buffer, wgpu::Buffer)>,
        gathers: Vec<Dispatch>,
    },
    Streamed {
        host: Arc<Dataset>,
        slabs: Box<[Slab; 2]>,
        /// The slab the next submission reads.
        current: usize,
        /// Rows a slab holds.
        capacity: usize,
        /// The host's gathered bytes, reused for every submission.
        scratch: Vec<u8>,
    },
}

/// A data set on the GPU as the gather reads it, with a buffer for its sample order.
pub(super) struct GpuDataset {
    pub(super) len: usize,
    pub(super) order: wgpu::Buffer,
    /// The data set's image shape, which deformations need.
    image_shape: Option<(usize, usize)>,
    storage: Storage,
    /// With deformations: the deformation recorded after the gather (resident), or one per slab
    /// (streamed), each reading the sample ids its gather used.
    deforms: Vec<Dispatch>,
}

/// The network's buffers a gather writes, and the counters whose cursor it reads.
pub(super) struct GatherTarget<'a> {
    pub(super) counters: &'a wgpu::Buffer,
    pub(super) x: &'a wgpu::Buffer,
    pub(super) y: &'a wgpu::Buffer,
}

impl GpuDataset {
    /// Uploads `data` (or, streamed, keeps it) and binds its gathers of `batch` rows into `to`.
    pub(super) fn bind(
        gpu: &Gpu,
        name: &str,
        data: HostData<'_>,
        placement: DataPlacement,
        batch: usize,
        to: &GatherTarget<'_>,
    ) -> Result<Self> {
        let dataset = data.get();
        let per_chunk = samples_per_chunk(gpu, dataset);
        let chunks = dataset.len().div_ceil(per_chunk);
        // The resident order has a word per sample, and must fit one binding too.
        let order_fits = 4 * dataset.len() <= binding_bytes(gpu);
        let streamed = match placement {
            DataPlacement::Auto => chunks > RESIDENT_CHUNKS || !order_fits,
            DataPlacement::Resident => false,
            DataPlacement::Streamed => true,
        };
        let shape = GatherShape {
            rows: batch,
            inputs: dataset.inputs(),
            outputs: dataset.outputs(),
            float_features: matches!(dataset.features, Features::Floats(_)),
            value_targets: matches!(dataset.targets, Targets::Values(_)),
        };
        let image_shape = dataset.image_shape;
        let mut bound = if streamed {
            // A slab is one binding too: as many steps as fit one, up to a submission's.
            let steps = (per_chunk / batch).clamp(1, STEPS_PER_SUBMIT);
            Self::bind_streamed(gpu, name, data.into_shared(), (&shape, steps), to)?
        } else {
            Self::bind_resident(gpu, name, dataset, per_chunk, &shape, to)?
        };
        bound.image_shape = image_shape;
        Ok(bound)
    }

    fn bind_resident(
        gpu: &Gpu,
        name: &str,
        dataset: &Dataset,
        per_chunk: usize,
        shape: &GatherShape,
        to: &GatherTarget<'_>,
    ) -> Result<Self> {
        let len = dataset.len();
        gpu.check_storage_size(&format!("the {name} set's sample order"), 4 * len as u64)?;
        let identity: Vec<u32> = (0..len as u32).collect();
        let order = gpu.storage_buffer_with(&format!("{name}.order"), &identity)?;
        let (mut chunks, mut gathers) = (Vec::new(), Vec::new());
        let count = len.div_ceil(per_chunk);
        // One chunk keeps the plain names, as most data sets have one.
        let name_of = |what: &str, index: usize| match count {
            1 => format!("{name}.{what}"),
            _ => format!("{name}.{what}[{index}]"),
        };
        for (index, first) in (0..len).step_by(per_chunk).enumerate() {
            let samples = per_chunk.min(len - first);
            let features = feature_bytes(&dataset.features, first, samples);
            let features = upload_bytes(gpu, &name_of("features", index), features)?;
            let targets = target_bytes(&dataset.targets, first, samples);
            let targets = upload_bytes(gpu, &name_of("targets", index), targets)?;
            chunks.push((features, targets));
            let buffers = GatherBuffers {
                features: &chunks[index].0,
                targets: &chunks[index].1,
                order: &order,
                counters: to.counters,
                x: to.x,
                y: to.y,
            };
            let span = ChunkSpan {
                first_sample: first,
                samples,
            };
            let label = name_of("gather", index);
            gathers.push(Gather::bind(gpu, &label, &buffers, shape, &span)?);
        }
        Ok(GpuDataset {
            len,
            order,
            image_shape: None,
            deforms: Vec::new(),
            storage: Storage::Resident {
                _chunks: chunks,
                gathers,
            },
        })
    }

    fn bind_streamed(
        gpu: &Gpu,
        name: &str,
        host: Arc<Dataset>,
        (shape, steps): (&GatherShape, usize),
        to: &GatherTarget<'_>,
    ) -> Result<Self> {
        let capacity = steps * shape.rows;
        let identity: Vec<u32> = (0..capacity as u32).collect();
        let order = gpu.storage_buffer_with(&format!("{name}.order"), &identity)?;
        let feature_bytes = capacity * host.features.bytes_per_sample();
        let target_bytes = capacity * 4 * shape.outputs;
        let slab = |index: usize| -> Result<Slab> {
            let what = format!("{name}.slab[{index}]");
            gpu.check_storage_size(&format!("{what}.features"), feature_bytes as u64)?;
            let features =
                gpu.storage_buffer(&format!("{what}.features"), feature_bytes.div_ceil(4))?;
            let targets = gpu.storage_buffer(&format!("{what}.targets"), target_bytes / 4)?;
            let buffers = GatherBuffers {
                features: &features,
                targets: &targets,
                order: &order,
                counters: to.counters,
                x: to.x,
                y: to.y,
            };
            let span = ChunkSpan {
                first_sample: 0,
                samples: capacity,
            };
            let gather = Gather::bind(gpu, &format!("{what}.gather"), &buffers, shape, &span)?;
            Ok(Slab {
                features,
                targets,
                gather,
                sample_ids: None,
            })
        };
        let slabs = Box::new([slab(0)?, slab(1)?]);
        Ok(GpuDataset {
            len: host.len(),
            order,
            image_shape: None,
            deforms: Vec::new(),
            storage: Storage::Streamed {
                host,
                slabs,
                current: 0,
                capacity,
                scratch: Vec::with_capacity(feature_bytes.max(target_bytes)),
            },
        })
    }

    /// The most steps of `rows` one submission may hold: a slab's worth when streamed.
    pub(super) fn steps_per_submit(&self, rows: usize) -> usize {
        match &self.storage {
            Storage::Resident { .. } => usize::MAX,
            Storage::Streamed { capacity, .. } => (capacity / rows.max(1)).max(1),
        }
    }

    /// Whether samples come from the host a submission at a time.
    pub(super) fn is_streamed(&self) -> bool {
        matches!(self.storage, Storage::Streamed { .. })
    }

    /// Deforms every batch gathered from now on with `augmentation`, drawn for a run seeded
    /// with `seed` and starting at 1-based `epoch` (see [`GpuDataset::set_epoch`]); `to` is
    /// where the gathers write. An error naming the option when the data has no image shape.
    pub(super) fn bind_deformation(
        &mut self,
        gpu: &Gpu,
        name: &str,
        (augmentation, seed, epoch): (&Augmentation, u64, u32),
        rows: usize,
        to: &GatherTarget<'_>,
    ) -> Result<()> {
        augmentation.check_image_shape(self.image_shape, &format!("the {name} set"))?;
        let shape = self.image_shape.unwrap_or_default();
        let bind = |label: String, samples: &wgpu::Buffer| {
            let buffers = DeformBuffers {
                samples,
                counters: to.counters,
                x: to.x,
            };
            let how = (augmentation, seed);
            Deform::bind(gpu, &label, &buffers, how, (rows, shape), epoch)
        };
        self.deforms = match &mut self.storage {
            Storage::Resident { .. } => vec![bind(format!("{name}.deform"), &self.order)?],
            Storage::Streamed {
                slabs, capacity, ..
            } => {
                let mut deforms = Vec::new();
                for (index, slab) in slabs.iter_mut().enumerate() {
                    let what = format!("{name}.slab[{index}]");
                    let ids = gpu.storage_buffer(&format!("{what}.sample_ids"), *capacity)?;
                    deforms.push(bind(format!("{what}.deform"), &ids)?);
                    slab.sample_ids = Some(ids);
                }
                deforms
            }
        };
        Ok(())
    }

    /// Deforms for 1-based `epoch` from now on (nothing without deformations).
    pub(super) fn set_epoch(&mut self, gpu: &Gpu, epoch: u32) -> Result<()> {
        self.deforms
            .iter_mut()
            .try_for_each(|d| Deform::set_epoch(gpu, d, epoch))
    }

    /// Records the gather of the batch at the cursor, and its deformation if there is one.
    pub(super) fn record_gather(&self, recorder: &mut impl Recorder) {
        let slab = match &self.storage {
            Storage::Resident { gathers, .. } => {
                gathers.iter().for_each(|g| g.record(recorder));
                0
            }
            Storage::Streamed { slabs, current, .. } => {
                slabs[*current].gather.record(recorder);
                *current
            }
        };
        if let Some(deform) = self.deforms.get(slab) {
            deform.record(recorder);
        }
    }

    /// Shapes every gather for batches of `rows`.
    pub(super) fn reshape(&mut self, gpu: &Gpu, rows: usize) -> Result<()> {
        for deform in &mut self.deforms {
            Deform::reshape(gpu, deform, rows)?;
        }
        match &mut self.storage {
            Storage::Resident { gathers, .. } => gathers
                .iter_mut()
                .try_for_each(|g| Gather::reshape(gpu, g, rows, false)),
            Storage::Streamed { slabs, .. } => slabs
                .iter_mut()
                .try_for_each(|s| Gather::reshape(gpu, &mut s.gather, rows, false)),
        }
    }

    /// Streamed: copies the samples `samples` (in order) into the next slab, makes it the one
    /// [`GpuDataset::record_gather`] reads, and puts the cursor in `counters` at its start.
    /// Resident: nothing, as the samples are already there.
    pub(super) fn stage(
        &mut self,
        gpu: &Gpu,
        samples: impl ExactSizeIterator<Item = u32> + Clone,
        counters: &wgpu::Buffer,
    ) -> Result<()> {
        let Storage::Streamed {
            host,
            slabs,
            current,
            capacity,
            scratch,
        } = &mut self.storage
        else {
            return Ok(());
        };
        if samples.len() > *capacity {
            return Err(Error::invalid(
                "streamed data",
                format!("{} samples staged into a slab of {capacity}", samples.len()),
            ));
        }
        *current = 1 - *current;
        let slab = &slabs[*current];
        let queue = gpu.queue();
        for (part, buffer) in [(0, &slab.features), (1, &slab.targets)] {
            scratch.clear();
            for sample in samples.clone() {
                let sample = sample as usize;
                scratch.extend_from_slice(match part {
                    0 => feature_bytes(&host.features, sample, 1),
                    _ => target_bytes(&host.targets, sample, 1),
                });
            }
            scratch.resize(scratch.len().next_multiple_of(4), 0);
            queue.write_buffer(buffer, 0, scratch);
        }
        if let Some(ids) = &slab.sample_ids {
            scratch.clear();
            samples.for_each(|sample| scratch.extend_from_slice(&sample.to_le_bytes()));
            queue.write_buffer(ids, 0, scratch);
        }
        queue.write_buffer(counters, 4, bytemuck::bytes_of(&0u32));
        Ok(())
    }
}
