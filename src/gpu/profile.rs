//! `--profile`: GPU time per kernel, from timestamp queries.
//!
//! A profiled step is recorded through the same code as a training step (see
//! [`Recorder`]), but each dispatch goes into a compute pass of its own whose beginning and end
//! write a timestamp. Steps are profiled one submission at a time and read back after each,
//! which a training loop would never do; the kernels themselves, their order and their
//! results are those of the real step, so profiling part of an epoch changes no number.

use std::time::Duration;

use web_time::Instant;

use crate::error::{Error, Result};
use crate::gpu::context::Gpu;
use crate::gpu::kernels::{Dispatch, Recorder};

/// Counts the dispatches of a step without recording them.
#[derive(Debug, Default)]
pub(crate) struct CountDispatches(pub(crate) usize);

impl Recorder for CountDispatches {
    fn record(&mut self, _dispatch: &Dispatch) {
        self.0 += 1;
    }
}

/// Records each dispatch into its own pass between two timestamps.
pub(crate) struct TimedPasses<'a> {
    encoder: &'a mut wgpu::CommandEncoder,
    query_set: &'a wgpu::QuerySet,
    capacity: usize,
    labels: Vec<String>,
}

impl Recorder for TimedPasses<'_> {
    fn record(&mut self, dispatch: &Dispatch) {
        // The profiler sized its query set from a count of this very step, so this holds; were
        // it ever not to, the dispatch still runs, untimed, rather than the step being cut.
        let timestamp_writes = (self.labels.len() < self.capacity).then(|| {
            let first = 2 * self.labels.len() as u32;
            wgpu::ComputePassTimestampWrites {
                query_set: self.query_set,
                beginning_of_pass_write_index: Some(first),
                end_of_pass_write_index: Some(first + 1),
            }
        });
        let timed = timestamp_writes.is_some();
        let mut pass = self
            .encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(dispatch.label()),
                timestamp_writes,
            });
        dispatch.record_into(&mut pass);
        if timed {
            self.labels.push(dispatch.label().to_string());
        }
    }
}

/// The time one kernel took, per step.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// The dispatch's label, e.g. `layer0.forward`.
    pub label: String,
    /// How many times a step dispatches it.
    pub calls_per_step: f64,
    /// GPU time per step, summed over its calls.
    pub per_step: Duration,
}

/// GPU time per kernel over a number of profiled steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// The adapter the steps ran on.
    pub adapter: String,
    /// Steps profiled.
    pub steps: usize,
    /// Kernels in the order a step first dispatches them.
    pub kernels: Vec<KernelTime>,
    /// Wall-clock time per profiled step, submission and read-back included.
    pub wall_per_step: Duration,
}

impl Profile {
    /// The GPU time of a step: the sum over its kernels.
    pub fn gpu_per_step(&self) -> Duration {
        self.kernels.iter().map(|k| k.per_step).sum()
    }
}

impl std::fmt::Display for Profile {
    /// A table, slowest kernel first, with each kernel's share of the step.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.gpu_per_step().as_secs_f64().max(f64::MIN_POSITIVE);
        writeln!(
            f,
            "GPU time per step over {} profiled steps on {} (timestamp queries):",
            self.steps, self.adapter
        )?;
        writeln!(
            f,
            "  {:<28} {:>6} {:>11} {:>7}",
            "kernel", "calls", "ms/step", "share"
        )?;
        let mut kernels: Vec<&KernelTime> = self.kernels.iter().collect();
        kernels.sort_by_key(|k| std::cmp::Reverse(k.per_step));
        for kernel in kernels {
            writeln!(
                f,
                "  {:<28} {:>6} {:>11.3} {:>6.1}%",
                kernel.label,
                kernel.calls_per_step,
                kernel.per_step.as_secs_f64() * 1e3,
                100.0 * kernel.per_step.as_secs_f64() / total
            )?;
        }
        write!(
            f,
            "  {:<28} {:>6} {:>11.3}   (wall {:.3} ms/step, one submission and read-back each)",
            "total",
            "",
            total * 1e3,
            self.wall_per_step.as_secs_f64() * 1e3
        )
    }
}

/// Why a browser cannot profile: each profiled step is waited for.
fn not_in_a_browser() -> Error {
    Error::invalid(
        "--profile",
        "profiling waits for every step to read its timestamps, which nothing in a browser may do",
    )
}

/// Times the dispatches of whole steps; one query pair per dispatch.
#[derive(Debug)]
pub struct Profiler {
    gpu: Gpu,
    query_set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
    /// Dispatches one step can time.
    capacity: usize,
    /// Per label, in first-seen order: total nanoseconds and calls.
    totals: Vec<(String, f64, usize)>,
    steps: usize,
    wall: Duration,
}

impl Profiler {
    /// A profiler for steps of at most `dispatches_per_step` dispatches; an error naming the
    /// adapter if it has no timestamp queries.
    pub fn new(gpu: &Gpu, dispatches_per_step: usize) -> Result<Profiler> {
        if cfg!(target_arch = "wasm32") {
            return Err(not_in_a_browser());
        }
        if !gpu.has_timestamps() {
            return Err(Error::invalid(
                "--profile",
                format!(
                    "{} has no timestamp queries, so per-kernel GPU time cannot be measured",
                    gpu.adapter_description()
                ),
            ));
        }
        // wgpu allows at most 4096 queries per set.
        let capacity = dispatches_per_step.clamp(1, 2048);
        let queries = 2 * capacity as u32;
        let bytes = u64::from(queries) * 8;
        let (query_set, resolve) = gpu.checked("creating the profiler's queries", |device| {
            let query_set = device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profiler.timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: queries,
            });
            let resolve = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profiler.resolve"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            (query_set, resolve)
        })?;
        let staging = gpu.staging_buffer("profiler.staging", bytes)?;
        Ok(Profiler {
            gpu: gpu.clone(),
            query_set,
            resolve,
            staging,
            capacity,
            totals: Vec::new(),
            steps: 0,
            wall: Duration::ZERO,
        })
    }

    /// Records one step through `record` with every dispatch timed, runs it, waits for it and
    /// adds its kernels' times to the totals.
    pub(crate) fn profile_step(&mut self, record: impl FnOnce(&mut TimedPasses<'_>)) -> Result<()> {
        let start = Instant::now();
        let mut encoder = self.gpu.encoder("profiled step");
        let labels = {
            let mut timed = TimedPasses {
                encoder: &mut encoder,
                query_set: &self.query_set,
                capacity: self.capacity,
                labels: Vec::with_capacity(self.capacity),
            };
            record(&mut timed);
            timed.labels
        };
        let queries = 2 * labels.len() as u32;
        if queries > 0 {
            encoder.resolve_query_set(&self.query_set, 0..queries, &self.resolve, 0);
        }
        let words = self.read_timestamps(encoder, queries)?;
        self.wall += start.elapsed();
        let period = f64::from(self.gpu.queue().get_timestamp_period());
        for (i, label) in labels.into_iter().enumerate() {
            let tick = |q: usize| u64::from(words[2 * q]) | (u64::from(words[2 * q + 1]) << 32);
            let nanos = tick(2 * i + 1).saturating_sub(tick(2 * i)) as f64 * period;
            match self.totals.iter_mut().find(|(l, _, _)| *l == label) {
                Some((_, total, calls)) => {
                    *total += nanos;
                    *calls += 1;
                }
                None => self.totals.push((label, nanos, 1)),
            }
        }
        self.steps += 1;
        Ok(())
    }

    /// Submits `encoder`, waits for it and reads back its `queries` timestamps. Profiling waits
    /// for every step, which nothing in a browser may do: there [`Profiler::new`] refuses, and
    /// this is an error.
    fn read_timestamps(&self, encoder: wgpu::CommandEncoder, queries: u32) -> Result<Vec<u32>> {
        #[cfg(not(target_arch = "wasm32"))]
        return Ok(self
            .gpu
            .read_back::<u32>(
                "timestamps",
                encoder,
                &self.staging,
                &[(&self.resolve, 2 * queries as usize)],
            )?
            .pop()
            .unwrap_or_default());
        #[cfg(target_arch = "wasm32")]
        {
            let _ = (encoder, queries, &self.staging);
            Err(not_in_a_browser())
        }
    }

    /// Steps profiled so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The times so far, per step.
    pub fn profile(&self) -> Profile {
        let steps = self.steps.max(1) as f64;
        Profile {
            adapter: self.gpu.adapter_description(),
            steps: self.steps,
            kernels: self
                .totals
                .iter()
                .map(|(label, nanos, calls)| KernelTime {
                    label: label.clone(),
                    calls_per_step: *calls as f64 / steps,
                    per_step: Duration::from_secs_f64(nanos / steps / 1e9),
                })
                .collect(),
            wall_per_step: self.wall.div_f64(steps),
        }
    }
}
