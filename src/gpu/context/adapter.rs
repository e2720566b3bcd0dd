//! Which adapter a [`Gpu`](super::Gpu) opens: a hardware GPU before a software one, Vulkan,
//! Metal or DX12 before GL, or the one the user names.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Which adapter [`Gpu::new`] opens.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum AdapterChoice {
    /// A hardware GPU if there is one (discrete before integrated), else a software adapter.
    #[default]
    Auto,
    /// Only a software (CPU-based) adapter, such as Mesa's lavapipe.
    Software,
    /// The first adapter whose name contains this text (case-insensitive).
    Name(String),
}

impl FromStr for AdapterChoice {
    type Err = std::convert::Infallible;

    /// `auto`, `software`, or any other text as a name to match.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => AdapterChoice::Auto,
            "software" | "cpu" => AdapterChoice::Software,
            _ => AdapterChoice::Name(s.to_string()),
        })
    }
}

impl fmt::Display for AdapterChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdapterChoice::Auto => f.write_str("auto"),
            AdapterChoice::Software => f.write_str("software"),
            AdapterChoice::Name(name) => f.write_str(name),
        }
    }
}

/// What to do when no adapter exists at all.
const INSTALL_HINT: &str = "no GPU adapter was found. Install a GPU driver, or a software Vulkan \
driver to run on the CPU: on Debian/Ubuntu `sudo apt-get install mesa-vulkan-drivers` (Mesa's \
lavapipe), on Fedora `sudo dnf install mesa-vulkan-drivers`; on Windows the WARP adapter of DX12 \
is built in";

/// One line per adapter: name, backend and device type.
pub fn describe_adapter(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter wgpu can see, in the order it reports them.
pub fn available_adapters() -> Vec<wgpu::Adapter> {
    pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()))
}

/// Hardware first: discrete, integrated, virtual, other, then software.
fn preference(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Backends in the order we trust them for compute, used to break ties between two adapters of
/// the same type (the same GPU is often visible through Vulkan and GL at once).
fn backend_rank(backend: wgpu::Backend) -> u8 {
    match backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

pub(super) fn choose_adapter(choice: &AdapterChoice) -> Result<wgpu::Adapter> {
    let mut adapters = available_adapters();
    // The GL backend has no compute shaders on many drivers; never pick it when another exists.
    adapters.sort_by_key(|a| {
        let info = a.get_info();
        (preference(info.device_type), backend_rank(info.backend))
    });
    if adapters.is_empty() {
        return Err(Error::NoAdapter(INSTALL_HINT.to_string()));
    }
    let names = || {
        adapters
            .iter()
            .map(|a| describe_adapter(&a.get_info()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let found = match choice {
        AdapterChoice::Auto => adapters.first(),
        AdapterChoice::Software => adapters
            .iter()
            .find(|a| a.get_info().device_type == wgpu::DeviceType::Cpu),
        AdapterChoice::Name(name) => {
            let needle = name.to_lowercase();
            adapters
                .iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&needle))
        }
    };
    match found {
        Some(adapter) => Ok(adapter.clone()),
        None => Err(Error::NoAdapter(match choice {
            AdapterChoice::Software => format!(
                "no software adapter was found (available: {}). Install Mesa's lavapipe: `sudo apt-get install mesa-vulkan-drivers`",
                names()
            ),
            _ => format!(
                "no adapter matches {choice:?}; available adapters: {}",
                names()
            ),
        })),
    }
}
