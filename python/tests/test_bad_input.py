"""Bad input is a ValueError (or NotFittedError) that names the problem, never a crash or a
silent answer."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import wgpu_mlp
from wgpu_mlp import MLPClassifier, MLPRegressor

from conftest import blobs


@pytest.fixture(scope="module")
def fitted():
    x, y = blobs(n=60)
    return MLPClassifier((4,), max_iter=2, random_state=0, device="cpu").fit(x, y)


def test_nan_empty_and_one_dimensional_features():
    x, y = blobs(n=60)
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier(device="cpu").fit(x, y)
    with pytest.raises(ValueError, match="0 sample"):
        MLPClassifier(device="cpu").fit(np.empty((0, 5)), [])
    with pytest.raises(ValueError, match="2D array"):
        MLPRegressor(device="cpu").fit(np.arange(5.0), np.arange(5.0))


def test_wrong_width_at_predict(fitted):
    with pytest.raises(ValueError, match="X has 4 features, but MLPClassifier is expecting 5"):
        fitted.predict(np.zeros((3, 4)))


def test_not_fitted():
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(np.zeros((2, 3)))


def test_bad_parameters_name_themselves():
    x, y = blobs(n=60)
    cases = [(dict(solver="lbfgs"), "solver"), (dict(activation="swish"), "activation"),
             (dict(learning_rate="invscaling"), "learning_rate"),
             (dict(hidden_layer_sizes=(4, 0)), "hidden_layer_sizes"),
             (dict(dropout=1.5), "dropout"), (dict(label_smoothing=-0.1), "label smoothing")]
    for params, named in cases:
        with pytest.raises(ValueError, match=named):
            MLPClassifier(device="cpu", max_iter=1, **params).fit(x, y)


def test_an_unknown_device_is_named():
    x, y = blobs(n=60)
    with pytest.raises(RuntimeError, match="no-such-gpu"):
        MLPClassifier(device="no-such-gpu", max_iter=1).fit(x, y)


def test_a_file_that_is_no_model(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="notes.safetensors"):
        wgpu_mlp.load(path)
    with pytest.raises(OSError):
        wgpu_mlp.load(tmp_path / "missing.safetensors")


def test_continuous_targets_for_a_classifier():
    x, _ = blobs(n=60)
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier(device="cpu").fit(x, np.linspace(0, 1, 60))
