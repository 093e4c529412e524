"""Shared by the benchmark tests: one MLflow store (building its tables takes seconds)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite tracking URI in a session folder; each test logs to its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('bench-mlflow') / 'mlflow.db'}"
