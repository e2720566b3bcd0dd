//! The README's command examples, run as a user would run them, so that they cannot drift from
//! the program.
//!
//! Every ```console block of README.md is a session: each `$ ` line runs in `sh` (standard error
//! merged into standard output, in order) in a scratch folder holding `data/mnist` (the shipped
//! MNIST subset), with the built `wgpu-mlp` first on `PATH`; the lines up to the next `$ ` are
//! what it must print. Blocks share one folder, in order, so a later example can use a file an
//! earlier one saved.
//!
//! Matching, as in trycmd: a line `...` stands for any number of lines, `[..]` for any text within
//! a line. What varies by machine is filtered on both sides before matching: adapter names, and
//! figures of time and throughput. Examples whose figures depend on the adapter's arithmetic
//! (GPU losses) show them as `[..]`; the CPU reference's repeat on any machine.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One `$ command` and the lines it must print.
struct Example {
    command: String,
    expected: Vec<String>,
    line: usize,
}

/// The examples of every ```console block, in order.
fn examples(readme: &str) -> Vec<Example> {
    let mut examples: Vec<Example> = Vec::new();
    let mut in_console = false;
    for (number, line) in readme.lines().enumerate() {
        if line.starts_with("```") {
            in_console = line == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            examples.push(Example {
                command: command.to_string(),
                expected: Vec::new(),
                line: number + 1,
            });
        } else if let Some(example) = examples.last_mut() {
            example.expected.push(line.to_string());
        }
    }
    examples
}

/// The adapter the README's examples were printed on.
const README_ADAPTERS: [&str; 2] = [
    "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)",
    "llvmpipe (LLVM 15.0.6, 256 bits) (Gl, Cpu)",
];

/// Replaces what varies by machine: the `adapters` named (the README's and this machine's) and
/// figures of time and throughput.
fn filter(line: &str, adapters: &[String]) -> String {
    let mut out = line.to_string();
    for adapter in adapters {
        out = out.replace(adapter.as_str(), "[ADAPTER]");
    }
    for unit in [" samples/s", " GFLOP/s", " s", " ms", " s;"] {
        out = replace_figures_before(&out, unit);
    }
    out
}

/// Replaces every number directly followed by `unit`, and the padding before it, with ` #`.
fn replace_figures_before(line: &str, unit: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find(unit) {
        let head = &rest[..at];
        let digits = head
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_digit() || *c == '.')
            .last()
            .map_or(at, |(i, _)| i);
        if digits < at {
            // Right-aligned figures pad with spaces as wide as they are short: one space stays.
            let before = head[..digits].trim_end_matches(' ');
            out.push_str(before);
            if before.len() < digits {
                out.push(' ');
            }
            out.push('#');
        } else {
            out.push_str(head);
        }
        out.push_str(unit);
        rest = &rest[at + unit.len()..];
    }
    out.push_str(rest);
    out
}

/// Whether `actual` matches the pattern line `expected` (`[..]`: any text).
fn line_matches(expected: &str, actual: &str) -> bool {
    let parts: Vec<&str> = expected.split("[..]").collect();
    if parts.len() == 1 {
        return expected == actual;
    }
    let Some(mut rest) = actual.strip_prefix(parts[0]) else {
        return false;
    };
    for (i, part) in parts.iter().enumerate().skip(1) {
        if i == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Whether the lines `actual` match the pattern lines `expected` (`...`: any lines).
fn lines_match(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => {
            (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..]))
        }
        Some((first, rest)) => actual
            .split_first()
            .is_some_and(|(line, tail)| line_matches(first, line) && lines_match(rest, tail)),
    }
}

/// The folder the examples run in: `data/mnist` (a link to the shipped subset) and
/// `digit0.pgm` … `digit2.pgm`, the subset's first three test images drawn dark on light at
/// twice their size, as the `predict` example describes them.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgpu-mlp-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let subset = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mnist");
    std::os::unix::fs::symlink(&subset, dir.join("data/mnist")).unwrap();
    let (_, test) = wgpu_mlp::data::load(&subset).unwrap();
    for i in 0..3 {
        let pixels = test.features.bytes().unwrap().row(i).to_vec();
        let mut pgm = b"P5\n56 56\n255\n".to_vec();
        for y in 0..56 {
            for x in 0..56 {
                pgm.push(255 - pixels[(y / 2) * 28 + x / 2]);
            }
        }
        std::fs::write(dir.join(format!("digit{i}.pgm")), pgm).unwrap();
    }
    dir
}

#[test]
fn the_readmes_examples_print_what_the_readme_says() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let examples = examples(&readme);
    assert!(
        examples.len() >= 7,
        "only {} examples found",
        examples.len()
    );
    let dir = scratch();
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_wgpu-mlp"));
    let path = format!(
        "{}:{}",
        binary.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut adapters: Vec<String> = README_ADAPTERS.map(String::from).to_vec();
    adapters.extend(
        wgpu_mlp::gpu::context::available_adapters()
            .iter()
            .map(|a| wgpu_mlp::gpu::context::describe_adapter(&a.get_info())),
    );
    let mut failures = Vec::new();
    for example in &examples {
        let output = Command::new("sh")
            .args(["-c", &format!("exec 2>&1\n{}", example.command)])
            .current_dir(&dir)
            .env("PATH", &path)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let actual: Vec<String> = text.lines().map(|l| filter(l, &adapters)).collect();
        let expected: Vec<String> = example
            .expected
            .iter()
            .map(|l| filter(l, &adapters))
            .collect();
        if !output.status.success() || !lines_match(&expected, &actual) {
            failures.push(format!(
                "README.md:{}: $ {}\n--- expected\n{}\n--- printed ({})\n{}",
                example.line,
                example.command,
                expected.join("\n"),
                output.status,
                actual.join("\n")
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_matcher_takes_wildcards_and_elisions_and_nothing_else() {
    let lines = |text: &str| text.lines().map(String::from).collect::<Vec<_>>();
    assert!(lines_match(&lines("a\n...\nd"), &lines("a\nb\nc\nd")));
    assert!(lines_match(&lines("a\n..."), &lines("a")));
    assert!(!lines_match(&lines("a\nd"), &lines("a\nb\nd")));
    assert!(line_matches(
        "loss [..] accuracy [..]%",
        "loss 0.5 accuracy 91.2%"
    ));
    assert!(!line_matches("loss [..] accuracy", "loss 0.5 precision"));
    let adapters = README_ADAPTERS.map(String::from);
    assert_eq!(
        filter(
            "W1 on llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu): 16967 samples/s, 6.94 GFLOP/s",
            &adapters
        ),
        "W1 on [ADAPTER]: # samples/s, # GFLOP/s"
    );
    assert_eq!(filter("epoch   1  2.5 s", &adapters), "epoch   1 # s");
    assert_eq!(
        filter("90.00%     96095 samples/s", &adapters),
        filter("90.00%    101224 samples/s", &adapters)
    );
}
