"""Shared helpers of the learned-router tests (fast hyperparameters)."""

from __future__ import annotations

from typing import Any

# fast hyperparameters per registered router (TF-IDF, few epochs); {} = defaults
FAST: dict[str, dict[str, Any]] = {
    "auto": {"encoder": "tfidf", "folds": 2, "time_budget_s": 4.0},
    "cluster": {"encoder": "tfidf", "n_clusters": 8},
    "knn": {"encoder": "tfidf"},
    "logistic": {"encoder": "tfidf"},
    "mf": {"encoder": "tfidf", "epochs": 5},
    "mlp": {"encoder": "tfidf", "epochs": 5, "hidden": 16},
    "stack": {"encoder": "tfidf", "bases": ["knn", "logistic", "cluster"], "folds": 2},
}
