//! Creating the buffers kernels bind, within the device's limits, and reading results back to
//! the host.

use crate::error::{Error, Result};
use crate::gpu::context::Gpu;

impl Gpu {
    /// Checks that a storage buffer of `bytes` fits the device's binding and buffer limits.
    pub(crate) fn check_storage_size(&self, what: &str, bytes: u64) -> Result<()> {
        let limits = &self.inner.limits;
        let checks = [
            (
                limits.max_storage_buffer_binding_size,
                "max_storage_buffer_binding_size",
            ),
            (limits.max_buffer_size, "max_buffer_size"),
        ];
        for (limit, limit_name) in checks {
            if bytes > limit {
                return Err(Error::DeviceLimit {
                    what: what.to_string(),
                    needed: bytes,
                    limit,
                    limit_name,
                    adapter: self.inner.adapter_info.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// A zero-filled storage buffer of `len` f32 values (at least one, as wgpu refuses empty
    /// bindings), usable as a copy source and destination.
    pub fn storage_buffer(&self, label: &str, len: usize) -> Result<wgpu::Buffer> {
        let bytes = (len.max(1) * 4) as u64;
        self.check_storage_size(label, bytes)?;
        self.checked(&format!("creating buffer {label}"), |device| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
    }

    /// A storage buffer holding `data` (f32 or u32 words).
    pub fn storage_buffer_with<T: bytemuck::Pod>(
        &self,
        label: &str,
        data: &[T],
    ) -> Result<wgpu::Buffer> {
        let buffer = self.storage_buffer(label, std::mem::size_of_val(data) / 4)?;
        self.inner
            .queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(data));
        Ok(buffer)
    }

    /// A uniform buffer holding `params`, rewritable with `queue.write_buffer`.
    pub(crate) fn uniform_buffer<T: bytemuck::Pod>(
        &self,
        label: &str,
        params: &T,
    ) -> Result<wgpu::Buffer> {
        let buffer = self.checked(&format!("creating buffer {label}"), |device| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: std::mem::size_of::<T>().next_multiple_of(16) as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        self.inner
            .queue
            .write_buffer(&buffer, 0, bytemuck::bytes_of(params));
        Ok(buffer)
    }

    /// A mappable buffer of `bytes` to copy results into for reading on the host.
    pub(crate) fn staging_buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        self.checked(&format!("creating buffer {label}"), |device| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.max(4),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
    }

    /// Copies `len` 4-byte values (f32 or u32) from each source buffer into `staging` (which must
    /// be large enough for all of them, back to back), submits `encoder` with the copies appended,
    /// waits at most [`READBACK_TIMEOUT`](super::READBACK_TIMEOUT), and returns the values of each source. Blocks: the
    /// native form of [`Gpu::read_back_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn read_back<T: bytemuck::Pod>(
        &self,
        what: &str,
        encoder: wgpu::CommandEncoder,
        staging: &wgpu::Buffer,
        sources: &[(&wgpu::Buffer, usize)],
    ) -> Result<Vec<Vec<T>>> {
        pollster::block_on(self.read_back_async(what, encoder, staging, sources))
    }

    /// `Gpu::read_back` as a future, which is how a browser, where nothing may block, waits for
    /// a mapping: there the browser polls the device and the future is ready when the mapping
    /// is. Natively the future is ready when returned: it polls the device to completion.
    pub(crate) async fn read_back_async<T: bytemuck::Pod>(
        &self,
        what: &str,
        mut encoder: wgpu::CommandEncoder,
        staging: &wgpu::Buffer,
        sources: &[(&wgpu::Buffer, usize)],
    ) -> Result<Vec<Vec<T>>> {
        const { assert!(std::mem::size_of::<T>() == 4) };
        let mut offset = 0u64;
        for (buffer, len) in sources {
            let bytes = (*len * 4) as u64;
            encoder.copy_buffer_to_buffer(buffer, 0, staging, offset, bytes);
            offset += bytes;
        }
        if offset > staging.size() {
            return Err(Error::Readback {
                what: what.into(),
                why: format!(
                    "staging buffer holds {} bytes, {offset} needed",
                    staging.size()
                ),
            });
        }
        let submission = self.inner.queue.submit([encoder.finish()]);
        let slice = staging.slice(..offset.max(4));
        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        let readback_error = |why: String| Error::Readback {
            what: what.into(),
            why,
        };
        #[cfg(not(target_arch = "wasm32"))]
        self.inner
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: Some(super::READBACK_TIMEOUT),
            })
            .map_err(|e| readback_error(e.to_string()))?;
        #[cfg(target_arch = "wasm32")]
        let _ = submission;
        self.check_fault()?;
        let mapped = receiver.receive().await;
        // In a browser a fault caught while the copy ran is only known now.
        self.check_fault()?;
        match mapped {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(readback_error(e.to_string())),
            None => return Err(readback_error("the map callback never ran".into())),
        }
        let values = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| readback_error(e.to_string()))?;
            let all: &[T] = bytemuck::cast_slice(&view);
            let mut start = 0;
            sources
                .iter()
                .map(|(_, len)| {
                    let part = all[start..start + len].to_vec();
                    start += len;
                    part
                })
                .collect()
        };
        staging.unmap();
        Ok(values)
    }

    /// Reads the first `len` f32 values of `buffer` through a temporary staging buffer. For tests,
    /// tools and one-off downloads; the training loop uses its own reusable staging buffer.
    /// Blocks: the native form of [`Gpu::read_f32_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_f32(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        pollster::block_on(self.read_f32_async(buffer, len))
    }

    /// [`Gpu::read_f32`] as a future.
    pub async fn read_f32_async(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let label = "read_f32.staging";
        let staging = self.staging_buffer(label, (len * 4) as u64)?;
        let mut values = self
            .read_back_async(label, self.encoder(label), &staging, &[(buffer, len)])
            .await?;
        Ok(values.pop().unwrap_or_default())
    }
}
