//! Nothing saved is lost, and nothing grows: a save killed midway leaves the previous model
//! intact, and long runs of training steps and of model uploads and downloads keep the resident
//! memory flat.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{gpu, one_hot, random_matrix};
use wgpu_mlp::checkpoint::{self, CheckpointInfo};
use wgpu_mlp::rng::Rng;
use wgpu_mlp::{Activation, GpuMlp, Loss, Mlp};

/// Set in the child process that saves in a loop until it is killed.
const SAVE_LOOP: &str = "WGPU_MLP_TEST_SAVE_LOOP";

fn big_model(seed: u64) -> Mlp {
    // 4 million parameters: 16 MB to write, long enough to be caught midway.
    Mlp::new(
        &[1000, 2000, 1000],
        Activation::Relu,
        Activation::Identity,
        Loss::Mse,
        seed,
    )
    .unwrap()
}

#[test]
fn a_save_killed_midway_leaves_the_previous_model_intact() {
    if let Ok(path) = std::env::var(SAVE_LOOP) {
        // The child: overwrite the file with new models until killed.
        for seed in 1.. {
            checkpoint::save(path.as_ref(), &big_model(seed), &CheckpointInfo::default()).unwrap();
        }
    }
    let dir = std::env::temp_dir().join(format!("wgpu-mlp-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    let original = Mlp::new(
        &[4, 3, 2],
        Activation::Tanh,
        Activation::Sigmoid,
        Loss::Mse,
        0,
    )
    .unwrap();
    checkpoint::save(&path, &original, &CheckpointInfo::default()).unwrap();

    let mut rng = Rng::new(1);
    let mut survivors = (0, 0);
    let (mut kills, mut interrupted) = (0, 0);
    // Kill until a few kills have landed in the middle of a save (most do: the child does little
    // else), so that the test proves something about interrupted saves.
    while kills < 40 && (kills < 8 || interrupted < 3) {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_save_killed_midway_leaves_the_previous_model_intact",
                "--nocapture",
            ])
            .env(SAVE_LOOP, &path)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(50 + rng.below(300)));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        kills += 1;
        // The child must have been saving when the signal came, not have died of its own.
        #[cfg(unix)]
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "the saving child ended with {status}, not by the kill"
        );
        // A temporary file left behind is a save the kill interrupted.
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name().to_string_lossy().contains(".tmp-") {
                interrupted += 1;
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
        // Whatever moment the kill hit, the file is a whole model: the first one or a later one.
        let (model, _) = checkpoint::load(&path).unwrap();
        if model == original {
            survivors.0 += 1;
        } else {
            assert_eq!(model.sizes(), vec![1000, 2000, 1000]);
            survivors.1 += 1;
        }
    }
    eprintln!(
        "{kills} kills, {interrupted} in the middle of a save: the file held the original model {} times, a complete later one {} times",
        survivors.0, survivors.1
    );
    assert!(
        interrupted > 0,
        "none of {kills} kills landed in the middle of a save"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Resident memory of this process, in KiB.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Growth allowed after warm-up: allocator and driver caches settle within it; a leak of one
/// buffer per step or per model would not.
const ALLOWED_GROWTH_KIB: u64 = 32 * 1024;

#[test]
fn ten_thousand_steps_and_a_thousand_uploads_keep_memory_flat() {
    let gpu = gpu();
    let mlp = Mlp::new(
        &[64, 32, 10],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        1,
    )
    .unwrap();
    let (x, y) = (random_matrix(16, 64, 1), one_hot(16, 10, 2));

    let mut net = GpuMlp::new(&gpu, &mlp).unwrap();
    for _ in 0..1000 {
        net.train_step(x.view(), y.view(), 0.05).unwrap();
    }
    net.last_loss().unwrap();
    let before_steps = resident_kib();
    for _ in 0..10_000 {
        net.train_step(x.view(), y.view(), 0.05).unwrap();
    }
    assert!(net.last_loss().unwrap().is_finite());
    let after_steps = resident_kib();

    let trained = net.to_mlp().unwrap();
    for _ in 0..100 {
        GpuMlp::new(&gpu, &trained).unwrap().to_mlp().unwrap();
    }
    let before_uploads = resident_kib();
    for _ in 0..1000 {
        assert_eq!(
            GpuMlp::new(&gpu, &trained).unwrap().to_mlp().unwrap(),
            trained
        );
    }
    let after_uploads = resident_kib();
    eprintln!(
        "resident memory: 10,000 steps {before_steps} → {after_steps} KiB; 1,000 uploads and downloads {before_uploads} → {after_uploads} KiB"
    );
    assert!(
        after_steps <= before_steps + ALLOWED_GROWTH_KIB,
        "steps grew memory {before_steps} → {after_steps} KiB"
    );
    assert!(
        after_uploads <= before_uploads + ALLOWED_GROWTH_KIB,
        "uploads grew memory {before_uploads} → {after_uploads} KiB"
    );
}
