"""scikit-learn's own estimator checks, on the CPU reference and on the GPU (the software
adapter in CI): every check passes or is skipped for a missing optional package."""

import warnings

import pytest
from sklearn.utils.estimator_checks import check_estimator

from wgpu_mlp import MLPClassifier, MLPRegressor

# Checks that skip themselves when an optional package or setting is absent, never failures.
OPTIONAL = {"check_array_api_input", "check_classifier_data_not_an_array",
            "check_regressor_data_not_an_array"}


@pytest.mark.parametrize("device", ["cpu", "software"])
@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor], ids=lambda e: e.__name__)
def test_check_estimator(estimator, device):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator(device=device), on_fail=None)
    passed = [r["check_name"] for r in results if r["status"] == "passed"]
    others = {r["check_name"]: (r["status"], repr(r["exception"])) for r in results
              if r["status"] != "passed"}
    assert set(others) <= OPTIONAL and all(s == "skipped" for s, _ in others.values()), others
    assert len(passed) >= 48, passed
