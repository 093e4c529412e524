"""Worked example: train weaver-core's Particle Transformer on a benchmark task and score it.

The task's files are plain Parquet (docs/BENCHMARK.md): per event ``event_id``,
``label``, ``axis`` and a list of ``tracks``. This script reads the train split,
builds per-track inputs (flavortag's track features, tracks sorted by energy,
capped at ``--max-tracks``; any code that reads Parquet could build its own),
trains ParT (``weaver.nn.model.ParticleTransformer``, ``pip install
'flavortag[bench]'``) with AdamW for ``--epochs``, then writes its predictions
on the test split as ``event_id, prob_uds, prob_cc, prob_bb`` (Parquet) and
scores them with ``flavortag benchmark score`` (``--submit`` saves a
leaderboard entry with the parameter count, training events and inference cost).

    python scripts/benchmark_weaver_part.py --data samples/benchmark/zpole-3class-ild-v1 \\
        --train-events 15000 --epochs 2 --submit weaver-ParT

ParT's width is chosen to match flavortag's transformer in parameters
(``scripts/bench_vs_weaver.py``: ``build_part``); its pair features are its own
four (ln kT, ln z, ln Delta, ln m^2) from the tracks' four-momenta.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vs_weaver import build_part, weaver_part_class  # noqa: E402

from flavortag.batching import build_event_tensors  # noqa: E402
from flavortag.benchmark import default_data_dir, load_task  # noqa: E402
from flavortag.benchmark.make import read_manifest  # noqa: E402
from flavortag.features import VECTOR_FIELDS  # noqa: E402
from flavortag.io import read_events  # noqa: E402
from flavortag.models import build_model, count_parameters  # noqa: E402
from flavortag.training.settings import feature_names  # noqa: E402


def read_split(data: Path, split: str, per_class: int | None) -> ak.Array:
    """The events of a split (the first ``per_class`` of each class, file order)."""
    files = read_manifest(data)["splits"][split]["files"]
    parts, taken = [], {}
    for name in files:
        flavour = Path(name).name.split("-")[0].split(".")[0]
        have = taken.get(flavour, 0)
        if per_class is not None and have >= per_class:
            continue
        events = read_events(str(data / name))
        if per_class is not None:
            events = events[: per_class - have]
        taken[flavour] = have + len(events)
        parts.append(events)
    return ak.concatenate(parts)


def part_inputs(events: ak.Array, max_tracks: int, detector, mean=None, std=None):  # noqa: ANN001, ANN201
    """ParT's ``x [n, C, N]`` (standardised with train's mean / std), ``v [n, 4, N]``, ``mask [n, 1, N]``."""
    names, _ = feature_names(None)
    tensors = build_event_tensors(events, names, None, max_tracks=max_tracks, detector=detector, sort_by="E")
    valid = tensors.valid
    if mean is None:
        values = tensors.features[valid]
        mean, std = values.mean(0), values.std(0) + 1e-6
    x = np.where(valid[..., None], (tensors.features - mean) / std, 0.0).astype(np.float32)
    order = [VECTOR_FIELDS.index(f) for f in ("px", "py", "pz", "E")]
    assert tensors.vectors is not None
    v = np.ascontiguousarray(tensors.vectors[..., order].transpose(0, 2, 1)).astype(np.float32)
    inputs = (torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1))), torch.from_numpy(v),
              torch.from_numpy(valid[:, None, :].astype(np.float32)))
    return inputs, torch.from_numpy(tensors.labels.astype(np.int64)), mean, std


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="zpole-3class-ild-v1")
    parser.add_argument("--data", default=None, help="dataset folder (default: samples/benchmark/<task>)")
    parser.add_argument("--train-data", default=None, help="dataset folder of the train split (default: --data; "
                        "e.g. the full task's for a reduced copy, scripts/benchmark_tasks/)")
    parser.add_argument("--train-events", type=int, default=15000, help="per class")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-tracks", type=int, default=48)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="predictions file (default: <data>/predictions/weaver-part.parquet)")
    parser.add_argument("--submit", default=None, help="leaderboard entry name")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    task = load_task(args.task)
    data = Path(args.data) if args.data else default_data_dir(task)
    part_cls = weaver_part_class()
    if part_cls is None:
        return 1
    torch.manual_seed(args.seed)

    train_events = read_split(Path(args.train_data) if args.train_data else data, "train", args.train_events)
    (x, v, mask), labels, mean, std = part_inputs(train_events, args.max_tracks, task.detector)
    target = count_parameters(build_model({"name": "transformer"}, x.shape[1], 0))
    model, kwargs = build_part(part_cls, x.shape[1], target, build_model({"name": "transformer"}, 1, 0).config)
    n_params = count_parameters(model)
    print(f"ParT: {n_params} parameters (embed {kwargs['embed_dims'][-1]}), {len(labels)} training events, "
          f"{args.epochs} epochs, torch threads {torch.get_num_threads()}", flush=True)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
        total = 0.0
        for first in range(0, len(order) - args.batch_size + 1, args.batch_size):
            idx = order[first: first + args.batch_size]
            loss = torch.nn.functional.cross_entropy(model(x[idx], v[idx], mask[idx]), labels[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        print(f"epoch {epoch}: train loss {total / len(order):.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    train_s = time.perf_counter() - start

    start = time.perf_counter()
    test_events = read_split(data, "test", None)
    (x, v, mask), _, _, _ = part_inputs(test_events, args.max_tracks, task.detector, mean, std)
    model.eval()
    # events in order of track count: ParT's trimmer cuts each batch to its longest event (less padding)
    order = torch.from_numpy(np.argsort(mask.sum(dim=(1, 2)).numpy(), kind="stable"))
    p = np.empty((len(x), len(task.classes)), np.float32)
    with torch.no_grad():
        for first in range(0, len(x), 512):
            idx = order[first: first + 512]
            p[idx.numpy()] = torch.softmax(model(x[idx], v[idx], mask[idx]), -1).numpy()
    infer_us = 1e6 * (time.perf_counter() - start) / len(p)
    out = Path(args.out) if args.out else data / "predictions" / "weaver-part.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = {"event_id": np.asarray(test_events["event_id"])}
    columns.update({f"prob_{name}": p[:, k] for k, name in enumerate(task.classes)})
    pq.write_table(pa.table(columns), out)
    print(f"trained in {train_s:.0f} s; test inference (reading, features, forward) {infer_us:.0f} µs/event; "
          f"wrote {out}", flush=True)

    command = [sys.executable, "-m", "flavortag", "benchmark", "score", task.source, str(out), "--data", str(data)]
    if args.submit:
        command += ["--submit", args.submit, "--model", f"ParT (weaver-core), embed {kwargs['embed_dims'][-1]}",
                    "--parameters", str(n_params), "--train-events", str(len(labels)),
                    "--inference-us", f"{infer_us:.1f}", "--device", f"cpu, {torch.get_num_threads()} threads",
                    "--description", f"weaver-core ParticleTransformer, {args.epochs} epochs, AdamW 1e-3, "
                    f"batch {args.batch_size}, {args.max_tracks} tracks by energy (scripts/benchmark_weaver_part.py)",
                    "--url", "https://github.com/hqucms/weaver-core"]
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
