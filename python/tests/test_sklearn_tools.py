"""The estimators inside scikit-learn's tools: a pipeline under cross-validation, and a grid
search over the learning rate."""

import numpy as np
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from wgpu_mlp import MLPClassifier


def test_cross_val_score_of_a_pipeline():
    x, y = load_iris(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=300,
                                                             random_state=0, device="cpu"))
    scores = cross_val_score(pipeline, x, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.85, scores


def test_grid_search_over_two_learning_rates():
    x, y = load_iris(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    search = GridSearchCV(MLPClassifier((16,), max_iter=100, random_state=0, device="software"),
                          {"learning_rate_init": [1e-5, 1e-2]}, cv=3).fit(x, y)
    # At 1e-5 a hundred epochs barely move the weights; 1e-2 learns the flowers.
    assert search.best_params_ == {"learning_rate_init": 1e-2}
    means = search.cv_results_["mean_test_score"]
    assert means[1] > 0.85 and means[1] > means[0] + 0.1, means
    assert np.isclose(search.best_score_, means[1])
