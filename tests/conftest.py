"""Shared fixtures: a tiny real Pythia 8 sample (made once per test session)."""

from __future__ import annotations

from pathlib import Path

import pytest

N_PER_CLASS = 300


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three Parquet files (uds, cc, bb) of N_PER_CLASS Z-pole events each, ILD detector."""
    from flavortag.generate import generate_events
    from flavortag.io import write_events

    out = tmp_path_factory.mktemp("sample")
    for seed, flavour in enumerate(("uds", "cc", "bb")):
        events = generate_events(flavour, N_PER_CLASS, seed=100 + seed)
        write_events(events, out / f"{flavour}.parquet")
    return out
