//! Deformations from the command line: `augment` writes the same arrays on the GPU and with
//! `--cpu`, a resumed augmented run equals an uninterrupted one (GPU and CPU trainer), the model
//! file records the deformations and a contradicting option on resume is refused, and bad input
//! names the option.

use crate::*;

use wgpu_mlp::checkpoint;

/// The arrays of an `.npz` that `augment --npz` wrote: name → (shape, values).
fn read_npz(path: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = zip::ZipArchive::new(file).unwrap();
    let mut arrays = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let name = entry.name().unwrap().trim_end_matches(".npy").to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.contains("'descr': '<f4'"), "{header}");
        let dims = header
            .split("'shape': (")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap();
        let shape: Vec<usize> = dims
            .split(',')
            .filter(|d| !d.trim().is_empty())
            .map(|d| d.trim().parse().unwrap())
            .collect();
        let values: Vec<f32> = bytes[10 + header_len..]
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(values.len(), shape.iter().product::<usize>(), "{name}");
        arrays.push((name, shape, values));
    }
    arrays.sort_by(|a, b| a.0.cmp(&b.0));
    arrays
}

#[test]
fn augment_writes_the_same_arrays_on_the_gpu_and_the_cpu_and_a_grid() {
    let dir = scratch("augment-arrays");
    let data = mnist_subset_dir();
    let run = |name: &str, cpu: bool| {
        let (grid, npz) = (
            dir.join(format!("{name}.png")),
            dir.join(format!("{name}.npz")),
        );
        let mut args = vec![
            "augment",
            "--dataset",
            "mnist",
            "--data",
            data.to_str().unwrap(),
        ];
        args.extend([
            "--count", "3", "--copies", "2", "--epoch", "4", "--seed", "11",
        ]);
        args.extend(["--shear", "5", "--shift", "1"]);
        args.extend([
            "--output",
            grid.to_str().unwrap(),
            "--npz",
            npz.to_str().unwrap(),
        ]);
        if cpu {
            args.push("--cpu");
        }
        succeed(&args);
        (std::fs::read(grid).unwrap(), read_npz(&npz))
    };
    let (gpu_png, gpu) = run("gpu", false);
    let (_, cpu) = run("cpu", true);
    assert_eq!(gpu[0].0, "deformed");
    assert_eq!(gpu[0].1, [3, 2, 28, 28]);
    assert_eq!(
        (gpu[1].0.as_str(), &gpu[1].1[..]),
        ("original", &[3, 28, 28][..])
    );
    assert_eq!(gpu[1].2, cpu[1].2, "the originals differ");
    let worst = gpu[0]
        .2
        .iter()
        .zip(&cpu[0].2)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "GPU and CPU deformations differ by {worst}");
    assert!(gpu[0].2.iter().all(|v| (0.0..=1.0).contains(v)));
    let moved = gpu[0].2[..784]
        .iter()
        .zip(&gpu[1].2[..784])
        .filter(|(a, b)| (*a - *b).abs() > 0.1)
        .count();
    assert!(
        moved > 20,
        "the first deformation moved only {moved} pixels"
    );
    // A PNG of 3 rows and 3 columns of 28-pixel cells with 2-pixel gaps: 92 × 92.
    assert_eq!(&gpu_png[1..4], b"PNG");
    let width = u32::from_be_bytes(gpu_png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(gpu_png[20..24].try_into().unwrap());
    assert_eq!((width, height), (92, 92));
}

/// `train` on 300 MNIST images, not deformed.
fn plain_args(data: &str) -> Vec<&str> {
    let mut args = vec!["train", "--dataset", "mnist", "--data", data];
    args.extend(["--train-size", "300", "--test-size", "50"]);
    args.extend([
        "--hidden-sizes",
        "16",
        "--optimizer",
        "adam",
        "--lr",
        "0.003",
    ]);
    args.extend(["--batch", "32", "--seed", "3"]);
    args
}

/// `train` on 300 MNIST images, deformed, with the given extra options.
fn train_args<'a>(data: &'a str, model: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = plain_args(data);
    args.extend([
        "--augment",
        "affine,elastic",
        "--rotate",
        "12",
        "--elastic-alpha",
        "20",
    ]);
    args.extend(["--save", model, "--json"]);
    args.extend(extra);
    args
}

#[test]
fn a_resumed_augmented_run_equals_an_uninterrupted_one_on_the_gpu_and_the_cpu() {
    let dir = scratch("augment-resume");
    let data = mnist_subset_dir();
    let data = data.to_str().unwrap();
    for trainer in [None, Some("--cpu")] {
        let whole = dir.join("whole.safetensors");
        let half = dir.join("half.safetensors");
        let (whole_s, half_s) = (whole.to_str().unwrap(), half.to_str().unwrap());
        let device: Vec<&str> = trainer.into_iter().collect();
        let mut args = train_args(data, whole_s, &["--epochs", "2"]);
        args.extend(&device);
        succeed(&args);
        let mut args = train_args(data, half_s, &["--epochs", "1"]);
        args.extend(&device);
        succeed(&args);
        // Resumed with no deformation option: the model file's are used.
        let mut args = vec![
            "train", "--resume", half_s, "--save", half_s, "--epochs", "1",
        ];
        args.extend(["--data", data, "--train-size", "300", "--test-size", "50"]);
        args.extend(&device);
        succeed(&args);
        let (whole_mlp, info) = checkpoint::load(&whole).unwrap();
        let (resumed_mlp, _) = checkpoint::load(&half).unwrap();
        assert_eq!(
            resumed_mlp, whole_mlp,
            "{trainer:?}: the resumed run differs"
        );
        assert_eq!(info.extra["augment"], "affine,elastic");
        assert_eq!(info.extra["rotate"], "12");
        assert_eq!(info.extra["elastic_alpha"], "20");
        assert_eq!(info.extra["elastic_sigma"], "6");
        assert_eq!(info.extra["image_shape"], "28,28");
    }
    // A run without deformations trains to other weights.
    let plain = dir.join("plain.safetensors");
    let mut args = plain_args(data);
    args.extend(["--epochs", "2", "--save", plain.to_str().unwrap()]);
    succeed(&args);
    let (plain_mlp, _) = checkpoint::load(&plain).unwrap();
    let (whole_mlp, _) = checkpoint::load(&dir.join("whole.safetensors")).unwrap();
    assert_ne!(plain_mlp, whole_mlp);

    // On resume, other ranges, or deformations for a model trained without, are refused.
    let whole = dir.join("whole.safetensors");
    let error = fail(&[
        "train",
        "--resume",
        whole.to_str().unwrap(),
        "--augment",
        "affine",
        "--epochs",
        "1",
        "--data",
        data,
    ]);
    assert!(
        error.contains("--augment") && error.contains("contradicts"),
        "{error}"
    );
    let error = fail(&[
        "train",
        "--resume",
        plain.to_str().unwrap(),
        "--augment",
        "elastic",
        "--epochs",
        "1",
        "--data",
        data,
    ]);
    assert!(error.contains("without deformations"), "{error}");
}

#[test]
fn bad_deformation_options_are_refused_naming_the_option() {
    let dir = scratch("augment-errors");
    let csv = dir.join("flat.csv");
    let mut text = String::from("a,b,c,d,label\n");
    for i in 0..20 {
        text.push_str(&format!("{},{},{},{},{}\n", i, i * 2, i % 3, 1, i % 2));
    }
    std::fs::write(&csv, text).unwrap();
    let csv = csv.to_str().unwrap();
    let out = dir.join("grid.png");
    let out = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "train",
                "--train",
                csv,
                "--augment",
                "affine",
                "--epochs",
                "1",
            ],
            "--image-shape",
        ),
        (
            &[
                "train",
                "--train",
                csv,
                "--augment",
                "affine",
                "--image-shape",
                "3,2",
            ],
            "--image-shape 3,2",
        ),
        (
            &["train", "--train", csv, "--image-shape", "2,x"],
            "--image-shape",
        ),
        (
            &["augment", "--train", csv, "--output", out],
            "--image-shape",
        ),
        (&["train", "--augment", "wobble"], "augment"),
        (&["train", "--augment", "affine", "--rotate=-3"], "--rotate"),
        (
            &["train", "--augment", "affine", "--scale", "1.5"],
            "--scale",
        ),
        (
            &["train", "--augment", "elastic", "--elastic-sigma", "0"],
            "--elastic-sigma",
        ),
        (&["train", "--rotate", "5"], "--augment"),
        (
            &["train", "--augment", "elastic", "--shear", "5"],
            "--augment",
        ),
        (
            &[
                "augment",
                "--dataset",
                "mnist",
                "--count",
                "0",
                "--output",
                out,
            ],
            "--count",
        ),
    ];
    for (args, expected) in cases {
        let error = fail(args);
        assert!(error.contains(expected), "{args:?}: {error}");
    }
    // The CSV's 4 features as a 2×2 image train, deformed.
    succeed(&[
        "train",
        "--train",
        csv,
        "--augment",
        "affine",
        "--image-shape",
        "2,2",
        "--epochs",
        "1",
        "--cpu",
    ]);
}
