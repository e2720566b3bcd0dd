//! Choosing an adapter by backend on the adapters of this machine: `gl` and `NAME@gl` open the
//! GL adapter even where Vulkan sees the same device under the same name, `adapters` says what
//! to type for each, and a choice nothing matches is refused in words, listing the adapters.

use std::process::Command;

use wgpu_mlp::gpu::context::available_adapters;
use wgpu_mlp::{AdapterChoice, Error, Gpu};

/// The GL adapters wgpu sees here (none on many machines; the tests that need one then pass
/// without checking anything).
fn gl_adapters() -> Vec<wgpu::AdapterInfo> {
    available_adapters()
        .iter()
        .map(wgpu::Adapter::get_info)
        .filter(|info| info.backend == wgpu::Backend::Gl)
        .collect()
}

fn runtime_dir() {
    let runtime = std::env::temp_dir().join("wgpu-mlp-xdg");
    std::fs::create_dir_all(&runtime).unwrap();
    // SAFETY: set before any thread of this test reads the environment; every test sets it alike.
    unsafe { std::env::set_var("XDG_RUNTIME_DIR", runtime) };
}

#[test]
fn a_backend_alone_or_after_a_name_opens_an_adapter_of_that_backend() {
    runtime_dir();
    let Some(gl) = gl_adapters().into_iter().next() else {
        return;
    };
    let first_word = gl.name.split_whitespace().next().unwrap().to_uppercase();
    for text in ["gl".to_string(), "GL".into(), format!("{first_word}@gl")] {
        let gpu = Gpu::new(text.parse().unwrap()).unwrap();
        let description = gpu.adapter_description();
        assert!(
            description.contains("(Gl, "),
            "--adapter {text} opened {description}"
        );
        assert_eq!(gpu.adapter_info().backend, wgpu::Backend::Gl);
    }
    // By name alone the same device opens through a compute backend before GL.
    let by_name = Gpu::new(AdapterChoice::Name(first_word)).unwrap();
    let others = available_adapters().iter().any(|a| {
        let info = a.get_info();
        info.backend != wgpu::Backend::Gl && info.name == gl.name
    });
    assert_eq!(by_name.adapter_info().backend != wgpu::Backend::Gl, others);
}

#[test]
fn a_choice_nothing_matches_is_refused_in_words_listing_the_adapters() {
    runtime_dir();
    let adapters = available_adapters();
    if adapters.is_empty() {
        return;
    }
    for text in ["no-such-adapter", "no-such-adapter@vulkan"] {
        let error = Gpu::new(text.parse().unwrap()).unwrap_err();
        assert!(matches!(error, Error::NoAdapter(_)), "{error:?}");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "no adapter matches \"{text}\"; the adapters here are: "
            )),
            "{message}"
        );
        let first = wgpu_mlp::gpu::context::describe_adapter(&adapters[0].get_info());
        assert!(message.contains(&first), "{message}");
        assert!(
            message.ends_with(
                "(choose with --adapter NAME, NAME@BACKEND or a backend: vulkan, metal, dx12, gl)"
            ),
            "{message}"
        );
        assert!(
            !message.contains("Name") && !message.contains('{'),
            "{message}"
        );
    }
}

#[test]
fn the_adapters_command_says_what_to_type_for_each_adapter() {
    runtime_dir();
    let output = Command::new(env!("CARGO_BIN_EXE_wgpu-mlp"))
        .arg("adapters")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if available_adapters().is_empty() {
        assert!(String::from_utf8_lossy(&output.stderr).contains("--cpu"));
        return;
    }
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let choices: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("    choose with: --adapter "))
        .collect();
    assert_eq!(choices.len(), available_adapters().len(), "{stdout}");
    for gl in gl_adapters() {
        let word = gl.name.split_whitespace().next().unwrap().to_lowercase();
        let described = stdout
            .find(&format!("{} (Gl, ", gl.name))
            .expect("the GL adapter listed");
        let after = &stdout[described..];
        assert!(after.contains(&format!("--adapter {word}@gl")), "{stdout}");
    }
}
