"""Issue 16: stored labels that are no class are refused at read time with file and entry."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from flavortag.io import EventFormatError, ReadReport, read_events, write_events
from flavortag.io.columns import EventColumns
from flavortag.io.synthetic import synthetic_events

VALID = ("valid labels are 0 or 'uds', 1 or 'cc', 2 or 'bb', 3 or 'gg', 4 or 'ss' (5 classes; -1 or 'unknown' "
         "for an unknown class)")


def _with_labels(labels):
    events = synthetic_events(5, seed=1, label=2)
    return ak.with_field(events, labels, "label")


def test_parquet_label_out_of_range(tmp_path):
    path = tmp_path / "l7.parquet"
    ak.to_parquet(_with_labels(np.array([2, 1, 7, 0, 2], np.int32)), path)
    with pytest.raises(EventFormatError) as err:
        read_events(path)
    assert str(err.value) == f"{path}: entry 2: label 7 is not a class: {VALID}"
    assert err.value.entry == 2
    report = ReadReport()
    kept = read_events(path, on_error="skip", report=report)
    assert kept.label.tolist() == [2, 1, 0, 2]
    assert report.reasons == {"label not a class": 1}


def test_root_label_out_of_range(tmp_path):
    from flavortag.io.root import write_root_chunks

    cols = EventColumns.from_awkward(synthetic_events(5, seed=1, label=2))
    cols.label[3] = 7
    path = tmp_path / "l7.root"
    write_root_chunks([cols], path)
    with pytest.raises(EventFormatError) as err:
        read_events(path)
    assert str(err.value) == f"{path}: entry 3: label 7 is not a class: {VALID}"
    with pytest.raises(EventFormatError, match="entry 103: label 7"):
        list(_iter_root_in_steps(tmp_path, cols))


def _iter_root_in_steps(tmp_path, cols):
    from flavortag.io import iter_events
    from flavortag.io.root import write_root_chunks

    big = EventColumns.from_awkward(synthetic_events(200, seed=2, label=1))
    big.label[103] = 7
    path = tmp_path / "big.root"
    write_root_chunks([big], path)
    return iter_events(path, step_size=50)


def test_string_labels_are_class_names(tmp_path):
    path = tmp_path / "names.parquet"
    ak.to_parquet(_with_labels(["bb", "cc", "uds", "charm", "unknown"]), path)
    assert read_events(path).label.tolist() == [2, 1, 0, 1, -1]


def test_string_label_that_is_no_class(tmp_path):
    path = tmp_path / "bad.parquet"
    ak.to_parquet(_with_labels(["bb", "cc", "bbb", "uds", "bb"]), path)
    with pytest.raises(EventFormatError) as err:
        read_events(path)
    assert str(err.value) == f"{path}: entry 2: label 'bbb' is not a class: {VALID}"


def test_writing_an_array_with_a_bad_label_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"^event 2: label 7 is not a class"):
        write_events(_with_labels(np.array([2, 1, 7, 0, 2], np.int32)), tmp_path / "o.parquet")
    assert not (tmp_path / "o.parquet").exists()


def test_count_events_checks_and_maps_labels(tmp_path):
    from flavortag.io import count_events

    names = tmp_path / "names.parquet"
    ak.to_parquet(_with_labels(["bb", "cc", "uds", "charm", "bb"]), names)
    n, per_class = count_events([names])
    assert (n, per_class.tolist()) == (5, [1, 2, 2])
    bad = tmp_path / "l7.parquet"
    ak.to_parquet(_with_labels(np.array([2, 1, 7, 0, 2], np.int32)), bad)
    with pytest.raises(EventFormatError, match=r"l7.parquet: entry 2: label 7 is not a class"):
        count_events([bad])
