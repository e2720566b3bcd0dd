//! Which adapter a [`Gpu`](super::Gpu) opens: a hardware GPU before a software one, Vulkan,
//! Metal or DX12 before GL, or the one the user names by name, backend or both.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Which adapter [`Gpu::new`](super::Gpu::new) opens.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum AdapterChoice {
    /// A hardware GPU if there is one (discrete before integrated), else a software adapter.
    #[default]
    Auto,
    /// Only a software (CPU-based) adapter, such as Mesa's lavapipe.
    Software,
    /// The first adapter whose name contains this text (case-insensitive).
    Name(String),
    /// The adapter [`AdapterChoice::Auto`] would pick among those of one backend.
    Backend(wgpu::Backend),
    /// The first adapter of `backend` whose name contains `name` (case-insensitive): the way to
    /// tell apart one device seen through two backends, which wgpu names alike.
    NameOn {
        /// Text the adapter's name contains.
        name: String,
        /// The backend the adapter must use.
        backend: wgpu::Backend,
    },
}

/// The backends `--adapter` accepts, typed as wgpu names them ([`wgpu::Backend::to_str`]).
const BACKENDS: [wgpu::Backend; 4] = [
    wgpu::Backend::Vulkan,
    wgpu::Backend::Metal,
    wgpu::Backend::Dx12,
    wgpu::Backend::Gl,
];

/// How to type a choice, for messages.
const CHOICE_HELP: &str = "choose with --adapter NAME, NAME@BACKEND or a backend: vulkan, metal, \
dx12, gl";

/// The backend typed as `name` (case-insensitive).
fn parse_backend(name: &str) -> Option<wgpu::Backend> {
    BACKENDS
        .into_iter()
        .find(|backend| backend.to_str().eq_ignore_ascii_case(name))
}

impl FromStr for AdapterChoice {
    type Err = Error;

    /// `auto`; `software` (or `cpu`); a backend (`vulkan`, `metal`, `dx12`, `gl`); `NAME@BACKEND`;
    /// any other text as part of a name. All case-insensitive. Empty text, an empty name or
    /// backend around `@`, and an unknown backend after `@` are errors, since each would
    /// otherwise silently choose an adapter the user did not name.
    fn from_str(s: &str) -> Result<Self> {
        let invalid =
            |why: String| Error::invalid("adapter", format!("{s:?}: {why} ({CHOICE_HELP})"));
        let text = s.trim();
        if text.is_empty() {
            return Err(invalid("no adapter named".into()));
        }
        if let Some((name, backend)) = text.rsplit_once('@') {
            let (name, backend) = (name.trim(), backend.trim());
            if name.is_empty() || backend.is_empty() {
                return Err(invalid(
                    "NAME@BACKEND needs both a name and a backend".into(),
                ));
            }
            let backend = parse_backend(backend)
                .ok_or_else(|| invalid(format!("unknown backend {backend:?}")))?;
            let name = name.to_string();
            return Ok(AdapterChoice::NameOn { name, backend });
        }
        if let Some(backend) = parse_backend(text) {
            return Ok(AdapterChoice::Backend(backend));
        }
        Ok(match text.to_ascii_lowercase().as_str() {
            "auto" => AdapterChoice::Auto,
            "software" | "cpu" => AdapterChoice::Software,
            _ => AdapterChoice::Name(text.to_string()),
        })
    }
}

impl fmt::Display for AdapterChoice {
    /// The text [`AdapterChoice::from_str`] reads back as this choice.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdapterChoice::Auto => f.write_str("auto"),
            AdapterChoice::Software => f.write_str("software"),
            AdapterChoice::Name(name) => f.write_str(name),
            AdapterChoice::Backend(backend) => f.write_str(backend.to_str()),
            AdapterChoice::NameOn { name, backend } => {
                write!(f, "{name}@{}", backend.to_str())
            }
        }
    }
}

impl AdapterChoice {
    /// Whether an adapter described by `info` is one this choice accepts (before preferring
    /// hardware to software).
    fn accepts(&self, info: &wgpu::AdapterInfo) -> bool {
        let named = |name: &str| info.name.to_lowercase().contains(&name.to_lowercase());
        match self {
            AdapterChoice::Auto => true,
            AdapterChoice::Software => info.device_type == wgpu::DeviceType::Cpu,
            AdapterChoice::Name(name) => named(name),
            AdapterChoice::Backend(backend) => info.backend == *backend,
            AdapterChoice::NameOn { name, backend } => info.backend == *backend && named(name),
        }
    }
}

/// What to do when no adapter exists at all.
const INSTALL_HINT: &str = "no GPU adapter was found. Install a GPU driver, or a software Vulkan \
driver to run on the CPU: on Debian/Ubuntu `sudo apt-get install mesa-vulkan-drivers` (Mesa's \
lavapipe), on Fedora `sudo dnf install mesa-vulkan-drivers`; on Windows the WARP adapter of DX12 \
is built in; or train on the CPU with --cpu";

/// One line per adapter: name, backend and device type.
pub fn describe_adapter(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

#[cfg(not(target_arch = "wasm32"))]
fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter wgpu can see, in the order it reports them. Native only: a browser offers one
/// adapter, on request ([`Gpu::new_async`](super::Gpu::new_async)).
#[cfg(not(target_arch = "wasm32"))]
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
/// the same type (the same GPU is often visible through Vulkan and GL at once). GL has no compute
/// shaders on many drivers, so it is never picked when another backend would do.
fn backend_rank(backend: wgpu::Backend) -> u8 {
    match backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

/// The index of the adapter in `adapters` that `choice` opens: of those it accepts, the first by
/// [`preference`], then [`backend_rank`], then the order wgpu reported them in.
fn select(choice: &AdapterChoice, adapters: &[wgpu::AdapterInfo]) -> Option<usize> {
    (0..adapters.len())
        .filter(|&i| choice.accepts(&adapters[i]))
        .min_by_key(|&i| {
            let info = &adapters[i];
            (preference(info.device_type), backend_rank(info.backend), i)
        })
}

/// What to type after `--adapter` to open `adapters[index]`: its backend alone where that picks
/// it, then the shortest `NAME@BACKEND` that does (the first word of its name, else the whole
/// name). Empty when no text tells it apart, e.g. from an identical twin on the same backend.
pub fn ways_to_choose(adapters: &[wgpu::AdapterInfo], index: usize) -> Vec<String> {
    let Some(info) = adapters.get(index) else {
        return Vec::new();
    };
    let picks = |text: &String| {
        text.parse::<AdapterChoice>()
            .is_ok_and(|choice| select(&choice, adapters) == Some(index))
    };
    let backend = info.backend.to_str();
    let word = info.name.split_whitespace().next().unwrap_or_default();
    let named = [
        format!("{}@{backend}", word.to_lowercase()),
        format!("{}@{backend}", info.name.trim()),
    ];
    let mut ways: Vec<String> = [backend.to_string()].into_iter().filter(picks).collect();
    ways.extend(named.into_iter().find(picks));
    ways
}

/// The adapter `choice` opens and what it is. Natively one of every adapter wgpu sees; in a
/// browser the one it offers, described as `browser` reads it.
pub(super) async fn choose_adapter(
    choice: &AdapterChoice,
) -> Result<(wgpu::Adapter, wgpu::AdapterInfo)> {
    #[cfg(not(target_arch = "wasm32"))]
    let (adapters, infos) = {
        let adapters = instance().enumerate_adapters(wgpu::Backends::all()).await;
        let infos: Vec<_> = adapters.iter().map(wgpu::Adapter::get_info).collect();
        (adapters, infos)
    };
    #[cfg(target_arch = "wasm32")]
    let (adapters, infos) = {
        let (adapter, info) = super::browser::request_adapter().await?;
        (vec![adapter], vec![info])
    };
    if adapters.is_empty() {
        return Err(Error::NoAdapter(INSTALL_HINT.to_string()));
    }
    match select(choice, &infos) {
        Some(index) => Ok((adapters[index].clone(), infos[index].clone())),
        None => Err(Error::NoAdapter(no_match_message(choice, &infos))),
    }
}

/// Why no adapter of `adapters` matched `choice`, listing them and how to choose one.
fn no_match_message(choice: &AdapterChoice, adapters: &[wgpu::AdapterInfo]) -> String {
    let names = adapters
        .iter()
        .map(describe_adapter)
        .collect::<Vec<_>>()
        .join(", ");
    match choice {
        AdapterChoice::Software => format!(
            "no software adapter was found; the adapters here are: {names}. Install Mesa's \
             lavapipe: `sudo apt-get install mesa-vulkan-drivers`"
        ),
        _ => format!(
            "no adapter matches \"{choice}\"; the adapters here are: {names} ({CHOICE_HELP})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::Backend::{Dx12, Gl, Vulkan};

    fn name(text: &str) -> AdapterChoice {
        AdapterChoice::Name(text.into())
    }

    fn name_on(text: &str, backend: wgpu::Backend) -> AdapterChoice {
        AdapterChoice::NameOn {
            name: text.into(),
            backend,
        }
    }

    #[test]
    fn choices_parse_case_insensitively_and_print_back_as_typed() {
        let table = [
            ("auto", AdapterChoice::Auto, "auto"),
            ("AUTO", AdapterChoice::Auto, "auto"),
            ("software", AdapterChoice::Software, "software"),
            ("cpu", AdapterChoice::Software, "software"),
            ("gl", AdapterChoice::Backend(Gl), "gl"),
            ("Vulkan", AdapterChoice::Backend(Vulkan), "vulkan"),
            ("DX12", AdapterChoice::Backend(Dx12), "dx12"),
            (
                "metal",
                AdapterChoice::Backend(wgpu::Backend::Metal),
                "metal",
            ),
            ("llvmpipe@gl", name_on("llvmpipe", Gl), "llvmpipe@gl"),
            ("LLVMpipe @ GL", name_on("LLVMpipe", Gl), "LLVMpipe@gl"),
            ("a@b@vulkan", name_on("a@b", Vulkan), "a@b@vulkan"),
            ("RTX 4090", name("RTX 4090"), "RTX 4090"),
            (" llvmpipe ", name("llvmpipe"), "llvmpipe"),
        ];
        for (text, choice, printed) in table {
            assert_eq!(text.parse::<AdapterChoice>().unwrap(), choice, "{text:?}");
            assert_eq!(choice.to_string(), printed);
            assert_eq!(
                printed.parse::<AdapterChoice>().unwrap(),
                choice,
                "{printed:?}"
            );
        }
    }

    #[test]
    fn malformed_choices_are_errors_saying_what_to_type() {
        let table = [
            ("", "no adapter named"),
            ("  ", "no adapter named"),
            ("@gl", "needs both a name and a backend"),
            ("llvmpipe@", "needs both a name and a backend"),
            ("llvmpipe@opengl", "unknown backend \"opengl\""),
            ("llvmpipe@webgpu", "unknown backend \"webgpu\""),
        ];
        for (text, why) in table {
            let error = text.parse::<AdapterChoice>().unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("invalid adapter: {text:?}: ")),
                "{error}"
            );
            assert!(error.contains(why), "{text:?}: {error}");
            assert!(
                error.contains("NAME@BACKEND or a backend: vulkan, metal, dx12, gl"),
                "{error}"
            );
        }
    }

    fn info(
        name: &str,
        backend: wgpu::Backend,
        device_type: wgpu::DeviceType,
    ) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            name: name.into(),
            ..wgpu::AdapterInfo::new(device_type, backend)
        }
    }

    /// This machine's two adapters, GL reported first, and a hardware GPU seen through two
    /// backends.
    fn adapters() -> Vec<wgpu::AdapterInfo> {
        use wgpu::DeviceType::{Cpu, DiscreteGpu};
        vec![
            info("llvmpipe (LLVM 15.0.6, 256 bits)", Gl, Cpu),
            info("llvmpipe (LLVM 15.0.6, 256 bits)", Vulkan, Cpu),
            info("NVIDIA GeForce RTX 4090", Gl, DiscreteGpu),
            info("NVIDIA GeForce RTX 4090", Vulkan, DiscreteGpu),
        ]
    }

    #[test]
    fn a_backend_tells_apart_adapters_of_the_same_name() {
        let adapters = adapters();
        let pick = |text: &str| select(&text.parse().unwrap(), &adapters);
        assert_eq!(pick("auto"), Some(3));
        assert_eq!(pick("gl"), Some(2));
        assert_eq!(pick("vulkan"), Some(3));
        assert_eq!(pick("software"), Some(1));
        assert_eq!(pick("llvmpipe"), Some(1));
        assert_eq!(pick("llvmpipe@gl"), Some(0));
        assert_eq!(pick("LLVMPIPE@Vulkan"), Some(1));
        assert_eq!(pick("rtx@gl"), Some(2));
        assert_eq!(pick("dx12"), None);
        assert_eq!(pick("llvmpipe@dx12"), None);
    }

    #[test]
    fn every_adapter_is_listed_with_text_that_chooses_it() {
        let adapters = adapters();
        let ways: Vec<_> = (0..adapters.len())
            .map(|i| ways_to_choose(&adapters, i))
            .collect();
        assert_eq!(ways[0], ["llvmpipe@gl"]);
        assert_eq!(ways[1], ["llvmpipe@vulkan"]);
        assert_eq!(ways[2], ["gl", "nvidia@gl"]);
        assert_eq!(ways[3], ["vulkan", "nvidia@vulkan"]);
        // Only the whole name picks the UHD, and nothing picks its identical twin.
        let lookalikes = [
            info("Intel Arc A770", Vulkan, wgpu::DeviceType::DiscreteGpu),
            info("Intel UHD 770", Vulkan, wgpu::DeviceType::IntegratedGpu),
            info("Intel UHD 770", Vulkan, wgpu::DeviceType::IntegratedGpu),
        ];
        assert_eq!(ways_to_choose(&lookalikes, 0), ["vulkan", "intel@vulkan"]);
        assert_eq!(ways_to_choose(&lookalikes, 1), ["Intel UHD 770@vulkan"]);
        assert!(ways_to_choose(&lookalikes, 2).is_empty());
        assert!(ways_to_choose(&lookalikes, 9).is_empty());
    }

    #[test]
    fn no_match_lists_the_adapters_as_text_not_debug_output() {
        let adapters = adapters();
        for (choice, quoted) in [
            (name("foo"), "\"foo\""),
            (name_on("llvmpipe", Dx12), "\"llvmpipe@dx12\""),
            (AdapterChoice::Backend(Dx12), "\"dx12\""),
        ] {
            let message = no_match_message(&choice, &adapters);
            assert!(
                message.starts_with(&format!("no adapter matches {quoted}; ")),
                "{message}"
            );
            assert!(
                message.contains("llvmpipe (LLVM 15.0.6, 256 bits) (Gl, Cpu), "),
                "{message}"
            );
            assert!(
                message.contains("(choose with --adapter NAME, NAME@BACKEND"),
                "{message}"
            );
            assert!(
                !message.contains("Name(") && !message.contains("NameOn"),
                "{message}"
            );
        }
        let message = no_match_message(&AdapterChoice::Software, &adapters[2..]);
        assert!(message.contains("no software adapter"), "{message}");
        assert!(INSTALL_HINT.ends_with("or train on the CPU with --cpu"));
        assert!(INSTALL_HINT.contains("mesa-vulkan-drivers"));
    }
}
