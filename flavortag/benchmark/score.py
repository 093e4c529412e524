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

A task with shifted test sets (schema 2) is scored on ``test`` and every
``shifted/<variant>`` at once: the predictions must cover them all; each
variant's figures are named ``<variant>/<figure>``, and for each figure of
``metrics.robustness`` the fraction kept, ``<variant>/kept_<figure>`` = the
variant's figure / ``<variant>/nominal_<figure>`` (``test`` restricted to the
chunks the variant was made from), and ``mean_kept_<figure>`` over the variants.
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

from flavortag.benchmark.make import (
    EVENT_ID,
    ChecksumError,
    event_ids,
    file_sha256,
    ids_sha256,
    read_manifest,
)
from flavortag.benchmark.task import KEPT, MEAN_KEPT, NOMINAL, Task, TestVariant
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


def match_predictions(pred_ids: np.ndarray, truth_ids: np.ndarray, where: str,
                      sizes: dict[str, int] | None = None) -> np.ndarray:
    """Index into the predictions of each truth event; ``PredictionError`` unless the ids are the same set.

    ``sizes``: the splits ``truth_ids`` holds, in order, with their lengths (says where ids are missing).
    """
    pred_ids = np.asarray(pred_ids)
    if not np.issubdtype(pred_ids.dtype, np.integer):
        raise PredictionError(f"{where}: {EVENT_ID} must be integers, not {pred_ids.dtype}")
    pred_ids = pred_ids.astype(np.int64)
    unique = np.unique(pred_ids)
    problems = []
    if len(unique) != len(pred_ids):
        problems.append(f"{len(pred_ids) - len(unique)} repeated")
    absent = ~np.isin(truth_ids, unique)
    missing = int(absent.sum())
    extra = int((~np.isin(unique, truth_ids)).sum())
    if missing:
        problems.append(f"{missing} of the {len(truth_ids)} test events missing")
        if sizes and len(sizes) > 1:
            bounds = np.cumsum([0, *sizes.values()])
            problems[-1] += " (" + ", ".join(f"{split}: {int(absent[a:b].sum())}" for split, a, b
                                             in zip(sizes, bounds[:-1], bounds[1:]) if absent[a:b].any()) + ")"
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
    #: records scored in each split (``test`` and every ``shifted/<variant>``)
    n_events_by_split: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (inf / nan as strings)."""
        out = asdict(self)
        out["figures"] = {k: _json_number(v) for k, v in self.figures.items()}
        out["headline"] = {k: [_json_number(v), _json_number(e)] for k, (v, e) in self.headline.items()}
        return out


def _json_number(x: float) -> float | str:
    return float(x) if math.isfinite(x) else str(x)


def _figures(task: Task, probs: np.ndarray, labels: np.ndarray, where: str,
             prefix: str = "") -> tuple[dict[str, float], dict[str, float]]:
    """``(figures, 95% CL limits of the infinite rejections)`` of one split, names prefixed."""
    from flavortag.metrics import evaluate_predictions

    try:
        result = evaluate_predictions(probs, labels, efficiencies=task.metrics.efficiencies,
                                      f_c=task.metrics.f_c, f_b=task.metrics.f_b, curve_efficiencies=None,
                                      scheme=task.scheme)
    except ValueError as err:
        raise PredictionError(f"{where}: {err}") from None
    figures = result.flat_metrics(prefix=prefix)
    limits = {k: v for k, v in result.flat_metrics(prefix=prefix, infinite_rejection="limit").items()
              if not math.isfinite(figures[k]) and math.isfinite(v)}
    acc = figures[f"{prefix}acc"]
    figures[f"{prefix}acc_err"] = math.sqrt(acc * (1 - acc) / len(labels)) if len(labels) else math.nan  # binomial
    return figures, limits


def _ratio(a: float, a_err: float, b: float, b_err: float) -> tuple[float, float]:
    """``a / b`` and its error, the two taken as independent (conservative when they are positively correlated)."""
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return math.nan, math.nan
    r = a / b
    return r, abs(r) * math.hypot(a_err / a if a else math.nan, b_err / b)


def paired_nominal_ids(task: Task, variant: TestVariant) -> np.ndarray:
    """The ``test`` ids of the chunks a shifted test set was made from (its nominal counterpart)."""
    per_chunk = task.chunk_size * (task.n_jets or 1)
    return np.concatenate([event_ids(task.seed, flavour, k, per_chunk)
                           for flavour in task.flavours for k in range(variant.n_events // task.chunk_size)])


def robustness_figures(task: Task, figures: dict[str, float], probs: np.ndarray, labels: np.ndarray,
                       ids: np.ndarray, where: str) -> dict[str, float]:
    """Per variant and robustness figure F: ``<v>/nominal_F`` (test on the variant's chunks) and
    ``<v>/kept_F`` = ``<v>/F`` / ``<v>/nominal_F`` with errors; ``mean_kept_F`` over the variants."""
    out: dict[str, float] = {}
    kept: dict[str, list[tuple[float, float]]] = {f: [] for f in task.metrics.robustness}
    for variant in task.test_variants:
        mask = np.isin(ids, paired_nominal_ids(task, variant))
        nominal, _ = _figures(task, probs[mask], labels[mask], where, f"{variant.name}/{NOMINAL}")
        for f in task.metrics.robustness:
            n_key, v_key = f"{variant.name}/{NOMINAL}{f}", f"{variant.name}/{f}"
            out[n_key], out[f"{n_key}_err"] = nominal[n_key], nominal[f"{n_key}_err"]
            r = _ratio(figures[v_key], figures[f"{v_key}_err"], nominal[n_key], nominal[f"{n_key}_err"])
            out[f"{variant.name}/{KEPT}{f}"], out[f"{variant.name}/{KEPT}{f}_err"] = r
            kept[f].append(r)
    for f, values in kept.items():
        if values:
            out[f"{MEAN_KEPT}{f}"] = float(np.mean([v for v, _ in values]))
            out[f"{MEAN_KEPT}{f}_err"] = math.sqrt(sum(e * e for _, e in values)) / len(values)
    return out


def score_predictions(task: Task, data_dir: str | Path, paths: Sequence[str | Path]) -> Score:
    """Check ``paths`` against the made test split(s) of ``task`` and compute the official figures.

    A task with shifted test sets needs predictions for ``test`` and every
    ``shifted/<variant>`` (one or several files, any order); the figures of a
    variant are named ``<variant>/<figure>``, beside the robustness figures
    (:func:`robustness_figures`).
    """
    splits = task.scored_splits()
    truth = [split_truth(task, data_dir, split) for split in splits]
    truth_ids = np.concatenate([ids for ids, _ in truth])
    labels = np.concatenate([lab for _, lab in truth])
    columns = probability_columns(task)
    where = ", ".join(str(p) for p in paths)
    pred = read_predictions(paths, (EVENT_ID, *columns))
    sizes = {split: len(ids) for split, (ids, _) in zip(splits, truth)}
    index = match_predictions(pred[EVENT_ID], truth_ids, where, sizes)
    probs = np.stack([pred[c] for c in columns], axis=1).astype(np.float64)[index]
    figures: dict[str, float] = {}
    limits: dict[str, float] = {}
    start = 0
    for split, n in sizes.items():
        prefix = "" if split == "test" else f"{split.split('/', 1)[1]}/"
        part, part_limits = _figures(task, probs[start:start + n], labels[start:start + n], where, prefix)
        figures.update(part)
        limits.update(part_limits)
        start += n
    n_test = sizes["test"]
    figures.update(robustness_figures(task, figures, probs[:n_test], labels[:n_test], truth_ids[:n_test], where))
    headline = {name: (figures[name], figures.get(f"{name}_err", math.nan)) for name in task.metrics.headline}
    digest = hashlib.sha256("".join(file_sha256(p) for p in paths).encode()).hexdigest()
    return Score(task.name, task.version, n_test, figures, headline, limits, [str(p) for p in paths], digest,
                 n_events_by_split=sizes)


def format_score(score: Score, task: Task | None = None) -> str:
    """The headline figures, one per line (``rej_uds_at_b70  412.3 ± 18.1``); with ``task``, the
    fraction kept on each shifted test set."""
    records = "jets" if task is not None and task.n_jets else "events"
    lines = [f"{score.task} (v{score.task_version}): {score.n_events} test {records}"]
    width = max([18, *(len(name) for name in score.headline)])
    for name, (value, err) in score.headline.items():
        lines.append(_line(name, value, err, score.limits.get(name), width))
    if task is not None and task.test_variants:
        lines.append("fraction kept on the shifted test sets (variant / test on the same chunks):")
        for variant in task.test_variants:
            for f in task.metrics.robustness:
                key = f"{variant.name}/{KEPT}{f}"
                lines.append(_line(key, score.figures[key], score.figures[f"{key}_err"], None, 36))
    return "\n".join(lines)


def _line(name: str, value: float, err: float, limit: float | None, width: int = 18) -> str:
    if limit is not None:
        return f"  {name:<{width}} {value:>10} (> {limit:.4g} at 95% CL: no background event passes)"
    return f"  {name:<{width}} {value:10.4g} ± {err:.2g}" if math.isfinite(err) else f"  {name:<{width}} {value:10.4g}"


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
