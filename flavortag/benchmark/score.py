"""``score``: the official figures of a task from any tagger's prediction file.

A prediction file (Parquet or CSV, one or several files) holds, per test event,
``event_id`` and the class probabilities ``prob_<class>`` in the task's class
order (``prob_uds, prob_cc, prob_bb``: the columns of
:func:`flavortag.metrics.score_columns`, so ``flavortag predict`` output on the
test files is scored as it is; other columns are ignored).

Before anything is computed the predictions are checked against the made
dataset: the test files' sha256 against ``checksums.json``, the test ids
against the split's fingerprint, and the predictions' ids must be exactly the
test ids, each once. Anything else is refused with one line that says how
many ids are missing, extra or repeated. The figures are those of
:func:`flavortag.metrics.evaluate_predictions` with the task's f_c, f_b and
efficiencies: rejections with their binomial errors (background statistics).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flavortag.benchmark.make import EVENT_ID, ChecksumError, file_sha256, ids_sha256, read_manifest
from flavortag.benchmark.task import Task
from flavortag.io.atomic import atomic_output

SUBMISSIONS = "submissions"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


class PredictionError(ValueError):
    """Predictions that cannot be scored against a task (names the file and what is wrong)."""


def probability_columns(task: Task) -> tuple[str, ...]:
    """``prob_<class>`` of each class of the task, in class order."""
    return tuple(f"prob_{name}" for name in task.classes)


def read_predictions(paths: Sequence[str | Path], columns: Sequence[str]) -> dict[str, np.ndarray]:
    """The ``columns`` of one or more Parquet / CSV files, concatenated in the order given."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    parts: list[dict[str, np.ndarray]] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise PredictionError(f"{path}: no such prediction file")
        suffix = "".join(path.suffixes[-2:]).lower()
        try:
            if path.suffix.lower() == ".parquet":
                have = pq.read_schema(path).names
                _check_columns(path, have, columns)
                table = pq.read_table(path, columns=list(columns))
            elif path.suffix.lower() == ".csv" or suffix == ".csv.gz":
                table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                    include_columns=list(columns), include_missing_columns=True))
                _check_columns(path, [c for c in table.column_names if table[c].null_count < len(table)]
                               if len(table) else table.column_names, columns)
            else:
                raise PredictionError(f"{path}: predictions must be .parquet or .csv (got {path.suffix!r})")
        except (pa.ArrowInvalid, OSError) as err:
            raise PredictionError(f"{path}: cannot read the predictions: {err}") from None
        parts.append({name: table[name].to_numpy() for name in columns})
    return {name: np.concatenate([p[name] for p in parts]) for name in columns}


def _check_columns(path: Path, have: Sequence[str], need: Sequence[str]) -> None:
    missing = [c for c in need if c not in have]
    if missing:
        raise PredictionError(f"{path}: no column(s) {missing}; a prediction file needs {list(need)} "
                              f"(has {list(have)[:12]})")


def split_truth(task: Task, data_dir: str | Path, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """``(event ids, labels)`` of a split, its files verified against ``checksums.json``."""
    import pyarrow.parquet as pq

    out = Path(data_dir)
    manifest = read_manifest(out)
    if not manifest:
        raise ChecksumError(f"{out}: no made dataset (no checksums.json); run `flavortag benchmark make "
                            f"{task.name} --out {out}` first")
    if manifest.get("task") != task.name:
        raise ChecksumError(f"{out} holds task {manifest.get('task')!r}, not {task.name!r}")
    ids, labels = [], []
    for name in manifest["splits"][split]["files"]:
        path = out / name
        got = file_sha256(path) if path.is_file() else "missing"
        if got != manifest["files"][name]["sha256"]:
            raise ChecksumError(f"{path}: sha256 {got} is not the recorded one: remake it with "
                                f"`flavortag benchmark make {task.name} --out {out}`")
        table = pq.read_table(path, columns=[EVENT_ID, "label"])
        ids.append(table[EVENT_ID].to_numpy())
        labels.append(table["label"].to_numpy())
    all_ids = np.concatenate(ids)
    if ids_sha256(all_ids) != manifest["splits"][split]["ids_sha256"]:
        raise ChecksumError(f"{out}: the {split} ids do not match the split's fingerprint in checksums.json")
    return all_ids, np.concatenate(labels)


def match_predictions(pred_ids: np.ndarray, truth_ids: np.ndarray, where: str) -> np.ndarray:
    """Index into the predictions of each truth event; ``PredictionError`` unless the ids are the same set."""
    pred_ids = np.asarray(pred_ids)
    if not np.issubdtype(pred_ids.dtype, np.integer):
        raise PredictionError(f"{where}: {EVENT_ID} must be integers, not {pred_ids.dtype}")
    pred_ids = pred_ids.astype(np.int64)
    unique = np.unique(pred_ids)
    problems = []
    if len(unique) != len(pred_ids):
        problems.append(f"{len(pred_ids) - len(unique)} repeated")
    missing = int((~np.isin(truth_ids, unique)).sum())
    extra = int((~np.isin(unique, truth_ids)).sum())
    if missing:
        problems.append(f"{missing} of the {len(truth_ids)} test events missing")
    if extra:
        problems.append(f"{extra} not test events of this task")
    if problems or ids_sha256(unique) != ids_sha256(truth_ids):
        raise PredictionError(f"{where}: the predictions' {EVENT_ID}s do not match the task's test events "
                              f"({', '.join(problems) or 'checksum differs'}); score predictions of the "
                              "test split's files, every event once")
    order = np.argsort(pred_ids)
    return order[np.searchsorted(pred_ids[order], truth_ids)]


@dataclass
class Score:
    """The official figures of one prediction set on one task."""

    task: str
    task_version: int
    n_events: int
    figures: dict[str, float]
    headline: dict[str, tuple[float, float]]
    #: 95% CL lower limits of the rejections at which no background event passes (the figure is inf)
    limits: dict[str, float]
    predictions: list[str]
    predictions_sha256: str
    scored_at: str = field(default_factory=lambda: datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (inf / nan as strings)."""
        out = asdict(self)
        out["figures"] = {k: _json_number(v) for k, v in self.figures.items()}
        out["headline"] = {k: [_json_number(v), _json_number(e)] for k, (v, e) in self.headline.items()}
        return out


def _json_number(x: float) -> float | str:
    return float(x) if math.isfinite(x) else str(x)


def score_predictions(task: Task, data_dir: str | Path, paths: Sequence[str | Path]) -> Score:
    """Check ``paths`` against the made test split of ``task`` and compute the official figures."""
    from flavortag.metrics import evaluate_predictions

    truth_ids, labels = split_truth(task, data_dir)
    columns = probability_columns(task)
    where = ", ".join(str(p) for p in paths)
    pred = read_predictions(paths, (EVENT_ID, *columns))
    index = match_predictions(pred[EVENT_ID], truth_ids, where)
    probs = np.stack([pred[c] for c in columns], axis=1).astype(np.float64)[index]
    try:
        result = evaluate_predictions(probs, labels, efficiencies=task.metrics.efficiencies,
                                      f_c=task.metrics.f_c, f_b=task.metrics.f_b, curve_efficiencies=None)
    except ValueError as err:
        raise PredictionError(f"{where}: {err}") from None
    figures = result.flat_metrics(prefix="")
    limits = {k: v for k, v in result.flat_metrics(prefix="", infinite_rejection="limit").items()
              if not math.isfinite(figures[k]) and math.isfinite(v)}
    acc = figures["acc"]
    figures["acc_err"] = math.sqrt(acc * (1 - acc) / len(labels)) if len(labels) else math.nan  # binomial
    headline = {name: (figures[name], figures.get(f"{name}_err", math.nan)) for name in task.metrics.headline}
    digest = hashlib.sha256("".join(file_sha256(p) for p in paths).encode()).hexdigest()
    return Score(task.name, task.version, len(labels), figures, headline, limits, [str(p) for p in paths], digest)


def format_score(score: Score) -> str:
    """The headline figures, one per line: ``rej_uds_at_b70  412.3 ± 18.1``."""
    lines = [f"{score.task} (v{score.task_version}): {score.n_events} test events"]
    for name, (value, err) in score.headline.items():
        if name in score.limits:
            lines.append(f"  {name:<18} {value:>10} (> {score.limits[name]:.4g} at 95% CL: no background event passes)")
        else:
            lines.append(f"  {name:<18} {value:10.4g} ± {err:.2g}" if math.isfinite(err) else f"  {name:<18} {value:10.4g}")
    return "\n".join(lines)


@dataclass
class Submission:
    """A scored entry of the leaderboard: who, what it cost, and its :class:`Score`."""

    name: str
    model: str
    score: dict[str, Any]
    n_parameters: int | None = None
    train_events: int | None = None
    inference_us_per_event: float | None = None
    inference_device: str = ""
    description: str = ""
    url: str = ""


def check_submission_name(name: str) -> str:
    """``name`` if it is a usable entry name (letters, digits, ``_ . + -``; up to 64)."""
    if not _NAME.match(name):
        raise ValueError(f"submission name {name!r}: use letters, digits and _ . + - (up to 64 characters)")
    return name


def save_submission(data_dir: str | Path, submission: Submission) -> Path:
    """Write ``<data_dir>/submissions/<name>.json`` (atomic; replaces an entry of the same name)."""
    path = Path(data_dir) / SUBMISSIONS / f"{check_submission_name(submission.name)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(asdict(submission), indent=1) + "\n")
    return path


def load_submissions(data_dir: str | Path) -> list[Submission]:
    """Every saved submission of a dataset folder, by name."""
    folder = Path(data_dir) / SUBMISSIONS
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            out.append(Submission(**json.loads(path.read_text())))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: not a submission file ({err})") from None
    return out
