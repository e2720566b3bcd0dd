"""The estimators against references written here: a numpy forward pass over ``coefs_`` and
``intercepts_``, one SGD step of scikit-learn's L2-penalized loss computed by hand, and the
bookkeeping scikit-learn defines (``n_iter_``, ``loss_curve_``, ``validation_scores_``)."""

import os
import pickle
import signal
import threading
import time

import numpy as np
import pytest

import wgpu_mlp
from wgpu_mlp import MLPClassifier, MLPRegressor

from conftest import blobs, forward, softmax


@pytest.mark.parametrize("device", ["cpu", "software"])
def test_predict_proba_is_the_softmax_of_the_coefs(device):
    x, y = blobs()
    clf = MLPClassifier((12, 7), activation="tanh", max_iter=5, random_state=3, device=device)
    clf.fit(x, y)
    assert [c.shape for c in clf.coefs_] == [(5, 12), (12, 7), (7, 3)]
    expected = softmax(forward(clf.coefs_, clf.intercepts_, x, "tanh"))
    np.testing.assert_allclose(clf.predict_proba(x), expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(clf.predict(x), np.argmax(expected, axis=1))
    np.testing.assert_allclose(clf.predict_log_proba(x), np.log(expected), rtol=1e-3, atol=1e-5)
    assert clf.out_activation_ == "softmax" and clf.n_iter_ == 5 and len(clf.loss_curve_) == 5


@pytest.mark.parametrize("activation", ["logistic", "gelu", "silu", "leaky_relu"])
def test_every_hidden_activation_against_numpy(activation):
    x, y = blobs()
    clf = MLPClassifier((9,), activation=activation, max_iter=3, random_state=1, device="cpu")
    clf.fit(x, y)
    expected = softmax(forward(clf.coefs_, clf.intercepts_, x, activation))
    np.testing.assert_allclose(clf.predict_proba(x), expected, rtol=1e-4, atol=1e-6)


def test_regressor_predicts_its_linear_output_layer():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 4))
    y = np.stack([x @ [1.0, -2.0, 0.5, 0.0], np.sin(x[:, 0])], axis=1)
    reg = MLPRegressor((16,), learning_rate_init=0.01, batch_size=32, max_iter=100,
                       random_state=0, device="cpu").fit(x, y)
    np.testing.assert_allclose(reg.predict(x), forward(reg.coefs_, reg.intercepts_, x, "relu"),
                               rtol=1e-4, atol=1e-5)
    assert reg.score(x, y) > 0.9
    single = MLPRegressor((8,), max_iter=3, random_state=0, device="cpu").fit(x, y[:, 0])
    assert single.predict(x).shape == (200,) and single.out_activation_ == "identity"


def test_alpha_is_scikit_learns_l2_penalty_in_one_sgd_step():
    """Two one-step fits (batch = all samples): the second step must equal the hand-computed
    gradient of the mean cross-entropy plus alpha/(2n)·‖W‖², the library also decaying the
    biases (as torch.optim.SGD's weight_decay does)."""
    x, y = blobs(n=64)
    lr, alpha, n = 0.1, 0.5, len(x)
    clf = MLPClassifier((6,), solver="sgd", momentum=0.0, alpha=alpha, batch_size=n,
                        learning_rate_init=lr, max_iter=1, random_state=0, device="cpu")
    clf.fit(x, y)
    (w1, w2), (b1, b2) = [c.astype(np.float64) for c in clf.coefs_], \
        [b.astype(np.float64) for b in clf.intercepts_]
    clf.set_params(warm_start=True).fit(x, y)
    z1 = x @ w1 + b1
    a1 = np.maximum(z1, 0)
    dz2 = (softmax(a1 @ w2 + b2) - np.eye(3)[y]) / n
    dz1 = (dz2 @ w2.T) * (z1 > 0)
    decay = alpha / n
    expected = [w1 - lr * (x.T @ dz1 + decay * w1), w2 - lr * (a1.T @ dz2 + decay * w2)]
    expected_b = [b1 - lr * (dz1.sum(0) + decay * b1), b2 - lr * (dz2.sum(0) + decay * b2)]
    for got, want in zip(clf.coefs_ + clf.intercepts_, expected + expected_b):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2


def test_uint8_features_train_as_floats_divided_by_255():
    x, y = blobs(n=120)
    pixels = np.clip(x * 20 + 128, 0, 255).astype(np.uint8)
    settings = dict(hidden_layer_sizes=(8,), max_iter=4, random_state=5, device="cpu")
    on_bytes = MLPClassifier(**settings).fit(pixels, y)
    on_floats = MLPClassifier(**settings).fit(pixels.astype(np.float32) / 255, y)
    np.testing.assert_allclose(on_bytes.loss_curve_, on_floats.loss_curve_, rtol=1e-6)
    # coefs_ act on the features as given: the bytes model's first layer is the other's ÷255.
    np.testing.assert_allclose(on_bytes.coefs_[0] * 255, on_floats.coefs_[0], rtol=1e-5)
    np.testing.assert_allclose(on_bytes.predict_proba(pixels),
                               softmax(forward(on_bytes.coefs_, on_bytes.intercepts_, pixels,
                                               "relu")), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_stopping_follows_tol_and_n_iter_no_change(early_stopping):
    """A tol that no epoch can meet stops training after as many epochs as scikit-learn's own
    MLPClassifier trains under the same rule."""
    from sklearn.neural_network import MLPClassifier as Reference

    x, y = blobs()
    rule = dict(tol=1e9, n_iter_no_change=3, max_iter=50, early_stopping=early_stopping)
    ours = MLPClassifier((8,), random_state=0, device="cpu", **rule).fit(x, y)
    reference = Reference((8,), random_state=0, **rule).fit(x, y)
    assert ours.n_iter_ == reference.n_iter_ == 5
    if early_stopping:
        assert len(ours.validation_scores_) == 5 and ours.best_loss_ is None
        assert ours.best_validation_score_ == max(ours.validation_scores_)
    else:
        assert ours.best_loss_ == min(ours.loss_curve_) and ours.validation_scores_ is None


def test_partial_fit_and_warm_start_continue_the_model():
    x, y = blobs()
    clf = MLPClassifier((8,), random_state=0, device="cpu")
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(x, y)
    for _ in range(3):
        clf.partial_fit(x, y, classes=[0, 1, 2])
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3
    # Three epochs at once train the same model as three partial fits.
    once = MLPClassifier((8,), max_iter=3, random_state=0, device="cpu").fit(x, y)
    np.testing.assert_allclose(once.loss_curve_, clf.loss_curve_, rtol=1e-6)
    np.testing.assert_allclose(once.coefs_[0], clf.coefs_[0], rtol=1e-5, atol=1e-7)


def test_verbose_prints_the_cli_epoch_lines(capsys):
    x, y = blobs(n=60)
    MLPClassifier((4,), max_iter=2, verbose=True, random_state=0, device="cpu").fit(x, y)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("epoch")]
    assert len(lines) == 2 and lines[0].startswith("epoch   1  train loss ")
    assert lines[1].endswith(" s") and "samples/s" in lines[1]


def test_pickle_and_save_load(tmp_path):
    x, y = blobs()
    labels = np.array(["ant", "bee", "cat"])[y]
    clf = MLPClassifier((8,), max_iter=3, random_state=0, device="cpu").fit(x, labels)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(x), clf.predict_proba(x))
    clf.save(tmp_path / "model.safetensors")
    loaded = wgpu_mlp.load(tmp_path / "model.safetensors")
    assert type(loaded) is MLPClassifier and list(loaded.classes_) == ["ant", "bee", "cat"]
    np.testing.assert_array_equal(loaded.predict(x), clf.predict(x))
    assert loaded.hidden_layer_sizes == (8,) and loaded.n_iter_ == 3


def test_adapters_are_listed_and_a_gpu_trains():
    adapters = wgpu_mlp.adapters()
    assert adapters, "no adapter: GPU tests fail without one (install Mesa's lavapipe)"
    x, y = blobs()
    settings = dict(hidden_layer_sizes=(16,), batch_size=16, max_iter=20, random_state=0)
    gpu = MLPClassifier(device="software", **settings).fit(x, y)
    cpu = MLPClassifier(device="cpu", **settings).fit(x, y)
    # The same math on both: the losses agree to float rounding.
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=2e-4)
    assert gpu.score(x, y) > 0.9


def test_training_releases_the_gil():
    x, y = blobs(n=8000, features=50)
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    thread = threading.Thread(target=tick)
    thread.start()
    start = time.perf_counter()
    epochs = 10
    MLPClassifier((512,), max_iter=epochs, batch_size=50, n_iter_no_change=100, random_state=0,
                  device="cpu").fit(x, y)
    elapsed = time.perf_counter() - start
    done.set()
    thread.join()
    during = len([t for t in ticks if start < t < start + elapsed])
    # Held by a fit, the GIL would let the thread tick only when the binding calls back into
    # Python: after each epoch and at each Ctrl-C poll (every 250 ms at most).
    callbacks = epochs + elapsed / 0.25
    assert during > 3 * callbacks + 10 and during > 0.25 * elapsed / 0.001, (elapsed, during)


def test_ctrl_c_stops_after_the_last_completed_epoch():
    x, y = blobs(n=4000, features=20)
    clf = MLPClassifier((256,), max_iter=10_000, batch_size=20, n_iter_no_change=10_000,
                        random_state=0, device="cpu")
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        clf.fit(x, y)
    assert time.perf_counter() - start < 30
    assert 1 <= clf.n_iter_ < 10_000 and len(clf.loss_curve_) == clf.n_iter_
    described = wgpu_mlp._core.describe(clf._model)
    assert described["epochs"] == clf.n_iter_
    assert clf.predict(x).shape == (4000,)
