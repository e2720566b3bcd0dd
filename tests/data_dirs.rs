//! Where the data sets are looked for: the order of the folders searched under `$WGPU_MLP_DATA`,
//! checked on temporary folders through the function that takes the root as a parameter (the
//! environment is shared by the test threads, so no test sets it).

use std::path::{Path, PathBuf};

use wgpu_mlp::data::{DatasetKind, IDX_FILES, data_dirs_under, first_dir_holding};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgpu-mlp-dirs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Puts the four IDX files (empty: only their presence is searched for) in `dir`.
fn fill(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for name in IDX_FILES {
        std::fs::write(dir.join(format!("{name}.gz")), b"").unwrap();
    }
}

#[test]
fn the_search_order_is_the_data_sets_sub_folder_then_the_root_then_the_working_folder() {
    let root = Path::new("/some/data");
    assert_eq!(
        data_dirs_under(DatasetKind::Mnist, Some(root)),
        [
            root.join("mnist"),
            root.to_path_buf(),
            Path::new("data").join("mnist"),
        ]
    );
    assert_eq!(
        data_dirs_under(DatasetKind::FashionMnist, Some(root)),
        [
            root.join("fashion-mnist"),
            root.to_path_buf(),
            Path::new("data").join("fashion-mnist"),
            PathBuf::from("/usr/share/datasets/fashion-mnist"),
        ]
    );
    assert_eq!(
        data_dirs_under(DatasetKind::Mnist, None),
        [Path::new("data").join("mnist")]
    );
}

#[test]
fn a_root_holding_the_files_and_a_root_of_data_set_folders_are_both_found() {
    // WGPU_MLP_DATA=…/mnist: the folder holds the files itself.
    let mnist = scratch("itself").join("mnist");
    fill(&mnist);
    let candidates = data_dirs_under(DatasetKind::Mnist, Some(&mnist));
    assert_eq!(
        first_dir_holding(DatasetKind::Mnist, &candidates).unwrap(),
        mnist
    );

    // WGPU_MLP_DATA=…/data: one sub-folder per data set.
    let data = scratch("parent");
    fill(&data.join("mnist"));
    fill(&data.join("fashion-mnist"));
    for kind in [DatasetKind::Mnist, DatasetKind::FashionMnist] {
        let candidates = data_dirs_under(kind, Some(&data));
        assert_eq!(
            first_dir_holding(kind, &candidates).unwrap(),
            data.join(kind.name())
        );
    }
}

#[test]
fn the_data_sets_own_sub_folder_wins_over_files_in_the_root() {
    // MNIST's files loose in the root and Fashion-MNIST's in its sub-folder: each data set finds
    // its own, never the other's.
    let data = scratch("mixed");
    fill(&data);
    fill(&data.join("fashion-mnist"));
    let found = |kind| first_dir_holding(kind, &data_dirs_under(kind, Some(&data))).unwrap();
    assert_eq!(found(DatasetKind::FashionMnist), data.join("fashion-mnist"));
    assert_eq!(found(DatasetKind::Mnist), data);
}

#[test]
fn a_folder_missing_a_file_is_skipped_and_no_folder_is_an_error_naming_every_one_searched() {
    let data = scratch("incomplete");
    fill(&data.join("mnist"));
    std::fs::remove_file(data.join("mnist").join(format!("{}.gz", IDX_FILES[3]))).unwrap();
    // A raw (not gzipped) file counts as well.
    fill(&data);
    std::fs::remove_file(data.join(format!("{}.gz", IDX_FILES[0]))).unwrap();
    std::fs::write(data.join(IDX_FILES[0]), b"").unwrap();
    let candidates = data_dirs_under(DatasetKind::Mnist, Some(&data));
    assert_eq!(
        first_dir_holding(DatasetKind::Mnist, &candidates).unwrap(),
        data
    );

    std::fs::remove_file(data.join(IDX_FILES[0])).unwrap();
    let only = [data.join("mnist"), data.clone()];
    let error = first_dir_holding(DatasetKind::Mnist, &only)
        .unwrap_err()
        .to_string();
    for dir in &only {
        assert!(error.contains(&dir.display().to_string()), "{error}");
    }
    assert!(
        error.contains("wgpu-mlp download --dataset mnist"),
        "{error}"
    );
}
