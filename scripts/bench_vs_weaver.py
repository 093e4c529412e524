"""Benchmark: our transformer against weaver-core's Particle Transformer, same events, same size.

Both models are built at about the same parameter count (ParT's width is
chosen to match ours; both counts are printed), see the same events (the
embedded Z-pole sample, ``data/zpole_ild``, tracks sorted by energy and capped at
``--max-tracks``), the same batch size, the same AdamW optimiser and the same
torch thread count. For each: ``--steps`` training steps after ``--warmup``,
then inference over the sample; events/s and the ratio ours / ParT, median of
``--repeats`` rounds that alternate the models (load from other processes hits
both alike). Batches are drawn by each model's loader inside the timing:

* ours as ``flavortag train`` runs it: length bucketing (batches of similar
  track counts, padded to the batch's longest event); also shown with
  bucketing off (random batches, padded to the batch's longest event) so the
  lever's share is visible;
* inference: ours through ``flavortag.scoring.inference.predict_proba`` (events in
  order of track count, outputs put back in input order), ParT in input order,
  its trimmer cutting each batch to its longest event;
* ParT as weaver runs it: random batches padded to the cap, ParT's own
  sequence trimmer on (it trims to a random quantile of the batch's lengths);
  ParT's pair features are its four (ln kT, ln z, ln Delta, ln m^2) from the
  four-momenta, ours our five (the same four plus the tracks' DCA).

weaver-core is used when importable (``pip install flavortag[bench]``); the
script installs nothing and, without it, times ours alone. ``--quality``
trains ours briefly with bucketing on and off on the same split and prints
accuracy and rejections with their statistical errors (the levers must not
change the tagging figures).

    python scripts/bench_vs_weaver.py --threads 2
    python scripts/bench_vs_weaver.py --quality --epochs 4
    python scripts/bench_vs_weaver.py --device cuda --precision bf16   # (scripts/gpu_check.sh)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flavortag.batching import EventTensors, build_event_tensors
from flavortag.batching.loader import make_loader
from flavortag.classes import N_CLASSES
from flavortag.dataset import split_indices
from flavortag.detector import DetectorModel
from flavortag.features import VECTOR_FIELDS
from flavortag.io import read_events
from flavortag.models import build_model, count_parameters
from flavortag.training.settings import feature_names

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = [ROOT / "data" / "zpole_ild" / f"{name}.parquet" for name in ("uds", "cc", "bb")]


def load_tensors(max_tracks: int, repeat: int) -> EventTensors:
    """The embedded sample as padded tensors (``repeat`` copies for more steps per epoch)."""
    track_names, event_names = feature_names(None)
    events = read_events([str(p) for p in SAMPLE])
    tensors = build_event_tensors(events, track_names, event_names, max_tracks=max_tracks,
                                  detector=DetectorModel(), sort_by="E")
    if repeat > 1:
        tensors = tensors.subset(np.tile(np.arange(len(tensors)), repeat))
    return tensors


# ---- weaver-core's ParT ------------------------------------------------------------------------
def weaver_part_class() -> Any:
    """``weaver.nn.model.ParticleTransformer.ParticleTransformer`` or None (not installed)."""
    try:
        from weaver.nn.model.ParticleTransformer import ParticleTransformer
    except Exception as err:  # noqa: BLE001 -- any import trouble: benchmark ours alone
        print(f"weaver-core not importable ({type(err).__name__}: {err}); "
              "install the bench extra (pip install 'flavortag[bench]') to compare; timing ours alone")
        return None
    return ParticleTransformer


def build_part(part_cls: Any, n_features: int, target_params: int, ours_cfg: dict[str, Any]) -> tuple[Any, dict]:
    """ParT with our depth, heads and FFN ratio and the width whose parameter count is closest to ours."""
    best: tuple[int, dict] | None = None
    heads = int(ours_cfg["num_heads"])
    for dim in range(8 * heads, 257, heads):
        kwargs = dict(
            input_dim=n_features, num_classes=N_CLASSES, pair_input_dim=4,
            embed_dims=[dim, dim, dim], pair_embed_dims=[32, 32, 32], num_heads=heads,
            num_layers=int(ours_cfg["depth"]), num_cls_layers=int(ours_cfg["class_depth"]),
            block_params={"ffn_ratio": int(ours_cfg["ffn_ratio"]), "dropout": 0.1},
            fc_params=[(dim, 0.1)], for_inference=False,
        )
        with contextlib.redirect_stdout(None):
            model = part_cls(**kwargs)
        n = count_parameters(model)
        if best is None or abs(n - target_params) < abs(best[0] - target_params):
            best = (n, kwargs)
        if n > target_params:
            break
    assert best is not None
    with contextlib.redirect_stdout(None):
        return part_cls(**best[1]), best[1]


class PartInputs:
    """ParT's layout of the same events, made once (as weaver's loader hands it over).

    ``x [n, C, N]`` standardised track features (weaver standardises in its
    data pipeline; ours does it inside the model), ``v [n, 4, N]`` (px, py, pz,
    E), ``mask [n, 1, N]``; batches are padded to the cap, as weaver pads.
    """

    def __init__(self, tensors: EventTensors) -> None:
        valid = tensors.valid
        values = tensors.features[valid]
        mean, std = values.mean(0), values.std(0) + 1e-6
        x = np.where(valid[..., None], (tensors.features - mean) / std, 0.0).astype(np.float32)
        assert tensors.vectors is not None
        order = [VECTOR_FIELDS.index(f) for f in ("px", "py", "pz", "E")]
        self.x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1)))
        self.v = torch.from_numpy(np.ascontiguousarray(tensors.vectors[..., order].transpose(0, 2, 1)))
        self.mask = torch.from_numpy(valid[:, None, :].astype(np.float32))
        self.labels = torch.from_numpy(tensors.labels)

    def batches(self, batch_size: int, seed: int, shuffle: bool = True) -> Iterator[tuple[torch.Tensor, ...]]:
        """Batches ``(x, v, mask, labels)``: a seeded random order (or in order), padded to the cap."""
        n = len(self.labels)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(n)
        for start in range(0, n - batch_size + 1 if shuffle else n, batch_size):
            idx = order[start : start + batch_size]
            yield self.x[idx], self.v[idx], self.mask[idx], self.labels[idx]


# ---- timing --------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_training(step: Callable[[Any], None], batches: Callable[[int], Iterator[Any]], n_steps: int,
                  n_warmup: int, device: torch.device) -> tuple[float, float]:
    """``(events/s, fraction of the time spent getting batches)`` over ``n_steps`` after warm-up."""
    epoch = 0
    it = batches(epoch)

    def next_batch() -> Any:
        nonlocal it, epoch
        batch = next(it, None)
        if batch is None:
            epoch += 1
            it = batches(epoch)
            batch = next(it)
        return batch

    for _ in range(n_warmup):
        step(next_batch())
    _sync(device)
    seen, wait = 0, 0.0
    start = time.perf_counter()
    for _ in range(n_steps):
        t0 = time.perf_counter()
        batch = next_batch()
        wait += time.perf_counter() - t0
        seen += step(batch)  # type: ignore[func-returns-value]
    _sync(device)
    elapsed = time.perf_counter() - start
    return seen / elapsed, wait / elapsed


def time_inference(forward: Callable[[Any], Any], batches: Callable[[], Iterator[Any]], n_events: int,
                   device: torch.device) -> float:
    """Events/s of one pass over the sample."""
    with torch.no_grad():
        forward(next(batches()))  # warm-up
        _sync(device)
        start = time.perf_counter()
        for batch in batches():
            forward(batch)
        _sync(device)
    return n_events / (time.perf_counter() - start)


def autocast(device: torch.device, precision: str) -> Any:
    """bf16 autocast (``--precision bf16``) or nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


class Ours:
    """Our transformer, its optimiser, loaders and one training step."""

    def __init__(self, tensors: EventTensors, args: argparse.Namespace, device: torch.device) -> None:
        self.tensors, self.args, self.device = tensors, args, device
        self.model = build_model({"name": "transformer"}, len(tensors.track_feature_names),
                                 len(tensors.event_feature_names)).to(device)
        self.model.fit_normalisation(tensors.valid_track_features(), tensors.event_features)
        self.model.to(device)
        self.train_model: torch.nn.Module = torch.compile(self.model) if args.compile else self.model
        self.optimiser = torch.optim.AdamW(self.model.parameters(), lr=1e-3)

    def loader(self, bucketing: bool) -> Callable[[int], Iterator[Any]]:
        def batches(epoch: int) -> Iterator[Any]:
            return iter(make_loader(self.tensors, self.args.batch_size, shuffle=True, seed=epoch,
                                    drop_last=True, bucketing=bucketing,
                                    pin_memory=self.device.type == "cuda"))
        return batches

    def step(self, batch: Any) -> int:
        batch = batch.to(self.device, non_blocking=True)
        self.model.train()
        with autocast(self.device, self.args.precision):
            logits = self.train_model(batch)
        loss = torch.nn.functional.cross_entropy(logits.float(), batch.labels)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        return len(batch.labels)

    def infer(self) -> float:
        """Events/s of :func:`flavortag.scoring.inference.predict_proba` (what predict / evaluate run)."""
        from flavortag.scoring.inference import predict_proba

        with autocast(self.device, self.args.precision):
            predict_proba(self.model, self.tensors.subset(slice(0, 512)), self.args.batch_size)  # warm-up
            _sync(self.device)
            start = time.perf_counter()
            predict_proba(self.model, self.tensors, self.args.batch_size)
            _sync(self.device)
        return len(self.tensors) / (time.perf_counter() - start)


class Part:
    """weaver-core's ParT, its optimiser, loader and one training step."""

    def __init__(self, part_cls: Any, tensors: EventTensors, target_params: int, args: argparse.Namespace,
                 device: torch.device) -> None:
        self.args, self.device = args, device
        ours_cfg = build_model({"name": "transformer"}, 1, 0).config
        model, self.kwargs = build_part(part_cls, len(tensors.track_feature_names), target_params, ours_cfg)
        self.model = model.to(device)
        self.train_model: torch.nn.Module = torch.compile(self.model) if args.compile else self.model
        self.inputs = PartInputs(tensors)
        self.optimiser = torch.optim.AdamW(self.model.parameters(), lr=1e-3)

    def loader(self) -> Callable[[int], Iterator[Any]]:
        return lambda epoch: self.inputs.batches(self.args.batch_size, seed=epoch)

    def step(self, batch: Any) -> int:
        x, v, mask, labels = (t.to(self.device, non_blocking=True) for t in batch)
        self.model.train()
        with autocast(self.device, self.args.precision):
            logits = self.train_model(x, v, mask)
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        return len(labels)

    def infer(self) -> float:
        self.model.eval()

        def forward(batch: Any) -> Any:
            x, v, mask, _ = (t.to(self.device, non_blocking=True) for t in batch)
            with autocast(self.device, self.args.precision):
                return self.model(x, v, mask)

        return time_inference(forward, lambda: self.inputs.batches(self.args.batch_size, 0, shuffle=False),
                              len(self.inputs.labels), self.device)


def load_average() -> str:
    """The 1-minute load average (the machine may be shared)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:  # not available on this platform
        return "?"


def peak_gpu_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def run_speed(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    tensors = load_tensors(args.max_tracks, args.repeat_sample)
    n_valid = tensors.n_valid
    print(f"events: {len(tensors)} (embedded sample x{args.repeat_sample}), cap {args.max_tracks} tracks, "
          f"{n_valid.mean():.1f} tracks/event (max {n_valid.max()}), batch {args.batch_size}, "
          f"device {device}, precision {args.precision}, torch threads {torch.get_num_threads()}, "
          f"compile {args.compile}, load average {load_average()}")
    torch.manual_seed(0)
    ours = Ours(tensors, args, device)
    n_ours = count_parameters(ours.model)
    part_cls = weaver_part_class()
    part = Part(part_cls, tensors, n_ours, args, device) if part_cls is not None else None
    print(f"parameters: ours {n_ours}" + (f", ParT {count_parameters(part.model)} "
          f"(embed {part.kwargs['embed_dims'][-1]}, {part.kwargs['num_layers']} + {part.kwargs['num_cls_layers']} "
          f"layers, {part.kwargs['num_heads']} heads)" if part else ""))

    runs: dict[str, tuple[Callable[[Any], int], Callable[[int], Iterator[Any]]]] = {
        "ours": (ours.step, ours.loader(bucketing=True)),
        "ours, no bucketing": (ours.step, ours.loader(bucketing=False)),
    }
    if part is not None:
        runs["ParT (weaver-core)"] = (part.step, part.loader())
    train: dict[str, list[float]] = {k: [] for k in runs}
    wait: dict[str, list[float]] = {k: [] for k in runs}
    peaks: dict[str, float | None] = {}
    for _ in range(args.repeats):
        for name, (step, batches) in runs.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            rate, waited = time_training(step, batches, args.steps, args.warmup, device)
            train[name].append(rate)
            wait[name].append(waited)
            peaks[name] = peak_gpu_mb(device)
    infer = {"ours": [ours.infer() for _ in range(args.repeats)]}
    if part is not None:
        infer["ParT (weaver-core)"] = [part.infer() for _ in range(args.repeats)]

    result: dict[str, Any] = {"load_average": load_average(), "params": {"ours": n_ours}}
    if part is not None:
        result["params"]["ParT"] = count_parameters(part.model)
    print(f"\n{'model':<22} {'train events/s':>15} {'data wait':>10} {'inference events/s':>19}"
          + ("   peak GPU MB" if device.type == "cuda" else ""))
    for name in runs:
        row = {"train": float(np.median(train[name])), "data_wait": float(np.median(wait[name])),
               "infer": float(np.median(infer[name])) if name in infer else None, "peak_gpu_mb": peaks[name]}
        result[name] = row
        inf = f"{row['infer']:>19.0f}" if row["infer"] is not None else f"{'':>19}"
        gpu = f"   {row['peak_gpu_mb']:.0f}" if row["peak_gpu_mb"] is not None else ""
        print(f"{name:<22} {row['train']:>15.0f} {100 * row['data_wait']:>9.1f}% {inf}{gpu}")
    ratios = np.array(train["ours"]) / np.array(train["ours, no bucketing"])
    print(f"\nbucketing on / off (ours, training): {np.median(ratios):.2f} "
          f"(range {ratios.min():.2f}-{ratios.max():.2f} over {args.repeats} rounds)")
    if part is not None:
        ratios = np.array(train["ours"]) / np.array(train["ParT (weaver-core)"])
        iratio = np.array(infer["ours"]) / np.array(infer["ParT (weaver-core)"])
        result["ratio_train"], result["ratio_infer"] = float(np.median(ratios)), float(np.median(iratio))
        verdict = "ok" if result["ratio_train"] >= 1.5 else "BELOW TARGET"
        print(f"ours / ParT, training:  {np.median(ratios):.2f} (range {ratios.min():.2f}-{ratios.max():.2f}; "
              f"target >= 1.5: {verdict})")
        print(f"ours / ParT, inference: {np.median(iratio):.2f} (range {iratio.min():.2f}-{iratio.max():.2f})")
    print(f"load average at the end {load_average()}")
    return result


# ---- quality: the levers must not change the tagging figures ------------------------------------
def run_quality(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from flavortag.metrics.discriminants import discriminant_b, discriminant_c
    from flavortag.metrics.rejection import rejection_at_efficiency

    tensors = load_tensors(args.max_tracks, 1)
    idx = split_indices(tensors.labels, {"train": 0.7, "test": 0.3}, 12345)
    train_t, test_t = tensors.subset(idx["train"]), tensors.subset(idx["test"])
    rows: dict[str, list[dict[str, float]]] = {"bucketing on": [], "bucketing off": []}
    print(f"quality: {len(train_t)} training / {len(test_t)} test events, {args.epochs} epochs each, "
          f"batch {args.batch_size}, seeds {list(range(args.seed, args.seed + args.seeds))} for both; "
          "errors: binomial (statistical) per training, spread over seeds for the means")
    for seed in range(args.seed, args.seed + args.seeds):
        for bucketing in (True, False):
            torch.manual_seed(seed)
            ours = Ours(train_t, args, device)
            steps = 0
            start = time.perf_counter()
            for epoch in range(args.epochs):
                for batch in ours.loader(bucketing)(1000 * seed + epoch):
                    ours.step(batch)
                    steps += 1
            seconds = time.perf_counter() - start
            ours.model.eval()
            probs = []
            with torch.no_grad():
                for batch in make_loader(test_t, 1024):
                    probs.append(torch.softmax(ours.model(batch.to(device)).float(), -1).cpu().numpy())
            p = np.concatenate(probs)
            y = test_t.labels
            acc = float((p.argmax(1) == y).mean())
            acc_err = math.sqrt(acc * (1 - acc) / len(y))
            db, dc = discriminant_b(p), discriminant_c(p)
            c_rej = rejection_at_efficiency(db[y == 2], db[y == 1], 0.8)[0].backgrounds["bkg"]
            uds_rej = rejection_at_efficiency(dc[y == 1], dc[y == 0], 0.5)[0].backgrounds["bkg"]
            name = "bucketing on" if bucketing else "bucketing off"
            rows[name].append({"accuracy": acc, "accuracy_err": acc_err, "c_rej_80b": c_rej.rejection,
                               "c_rej_80b_err": c_rej.rejection_err, "uds_rej_50c": uds_rej.rejection,
                               "uds_rej_50c_err": uds_rej.rejection_err, "train_s": seconds})
            print(f"seed {seed} {name:<14} accuracy {acc:.3f} ± {acc_err:.3f}   c rej. at 80% b eff. "
                  f"{c_rej.rejection:.1f} ± {c_rej.rejection_err:.1f}   uds rej. at 50% c eff. "
                  f"{uds_rej.rejection:.1f} ± {uds_rej.rejection_err:.1f}   ({seconds:.0f} s, {steps} steps)",
                  flush=True)
    out: dict[str, Any] = {"per_training": rows}
    for key in ("accuracy", "c_rej_80b", "uds_rej_50c"):
        means, errs = [], []
        for name in rows:
            values = np.array([r[key] for r in rows[name]])
            stat = math.sqrt(sum(r[key + "_err"] ** 2 for r in rows[name])) / len(values)
            spread = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else 0.0
            means.append(values.mean())
            errs.append(max(stat, spread))
        pull = (means[0] - means[1]) / math.hypot(*errs)
        out[key] = {"on": means[0], "on_err": errs[0], "off": means[1], "off_err": errs[1], "pull": pull}
        print(f"  {key}: on {means[0]:.4g} ± {errs[0]:.2g}, off {means[1]:.4g} ± {errs[1]:.2g}: "
              f"{pull:+.1f} sigma")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for both (0: leave as is)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-tracks", type=int, default=48)
    parser.add_argument("--steps", type=int, default=15, help="timed training steps per round")
    parser.add_argument("--warmup", type=int, default=6, help="untimed steps first (ParT's trimmer starts after 5)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (median taken)")
    parser.add_argument("--repeat-sample", type=int, default=1, help="copies of the 9000 embedded events")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--quality", action="store_true", help="train ours with bucketing on and off, compare")
    parser.add_argument("--epochs", type=int, default=4, help="--quality: epochs per training")
    parser.add_argument("--seeds", type=int, default=3, help="--quality: trainings per setting (seeds)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device available", file=sys.stderr)
        return 2
    result = run_quality(args, device) if args.quality else run_speed(args, device)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
