"""Issue 25: jet tagging with every visible particle and PID, and strange jets, on ZH(nu nu) at 250 GeV.

Generates ``H -> bb, cc, gg, ss, uu+dd`` (``flavours=[bb,cc,gg,ss,ud]``, two
Durham jets an event, ILD-like tracking, particle flow on: neutrals and PID),
then trains with the library behind ``flavortag train`` (no MLflow run, no
plots: the figures only) on the class scheme ``[ud, c, b, g, s]``:

* ``transformer_pf``: the transformer with ``features=jet_pid`` (neutral
  tokens, particle type, PID pulls);
* ``transformer_charged``: the same transformer on the default features
  (charged tracks only, no PID);
* ``transformer_pf_tuned`` and ``transformer_charged_tuned`` (``--taggers``
  names them): the tuned jet preset ``+experiment=transformer_zh_jets_tuned``
  (neutrals + PID), and the same on the default features (charged tracks
  only); this study's epochs and paths;
* ``bdt_pid``: the BDT on the event features of ``features=jet_pid`` (the
  LCFIPlus-era set plus kaon count, displaced-kaon charge, leading kaon);
* ``bdt``: the BDT on the default event features.

Prints, on the test split, with binomial errors: c rejection at 80 % b
(``D_b``), light (ud + s) rejection at 50 % c (``D_c``), g rejection at 50 % c,
s efficiency at 10 % ud mistag and g rejection there (``D_s = logit p_s``,
:mod:`flavortag.metrics.strange`), and the accuracy.

    python scripts/jets_pid_study.py --events 2500 --epochs 3 --out samples/zh_pid   # reduced
    python scripts/jets_pid_study.py --events 15000 --epochs 8 --out samples/zh_pid_30k  # the issue's size
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

FLAVOURS = ("bb", "cc", "gg", "ss", "ud")
CLASSES = "[ud,c,b,g,s]"


def _rejection_text(value: float, error: float) -> str:
    return f"{value:.1f} +- {error:.1f}" if math.isfinite(value) else f"{value}"


def figures(probs, labels, scheme) -> dict[str, tuple[float, float]]:  # noqa: ANN001 -- numpy / ClassScheme
    """The study's figures (value, binomial error) from test-split probabilities and output indices."""
    import numpy as np

    from flavortag.classes import BB, CC, GG, SS, UDS
    from flavortag.metrics import binomial_rejection, cut_at_efficiency, scheme_discriminant
    from flavortag.metrics.strange import strange_metrics

    index = {code: scheme.index(code) for code in (UDS, CC, BB, GG, SS)}
    d_b = scheme_discriminant(probs, "b", 0.22, scheme)
    d_c = scheme_discriminant(probs, "c", 0.26, scheme)

    def rejection(score, signal, background, efficiency):  # noqa: ANN001, ANN202
        cut = cut_at_efficiency(score[labels == index[signal]], efficiency)
        bkg = score[np.isin(labels, [index[c] for c in background])]
        return binomial_rejection(int(np.sum(bkg > cut)), len(bkg))

    out = {"c_rej_at_b80": rejection(d_b, BB, (CC,), 0.8),
           "light_rej_at_c50": rejection(d_c, CC, (UDS, SS), 0.5),
           "ud_rej_at_c50": rejection(d_c, CC, (UDS,), 0.5),
           "g_rej_at_c50": rejection(d_c, CC, (GG,), 0.5)}
    s = strange_metrics(probs, labels, scheme)
    out["s_eff_at_ud10"] = (s["s_eff_at_ud10"], s["s_eff_at_ud10_err"])
    out["s_g_rej_at_ud10"] = (s["s_rej_g_at_ud10"], s["s_rej_g_at_ud10_err"])
    acc = float(np.mean(np.argmax(probs, axis=1) == labels))
    out["accuracy"] = (acc, math.sqrt(acc * (1 - acc) / len(labels)))
    return out


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2500, help="events per class (two jets each)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="samples/zh_pid")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--taggers", default="transformer_pf,transformer_charged,bdt_pid,bdt")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from flavortag.apps import CONFIG_DIR
    from flavortag.generate.production import produce_samples
    from flavortag.scoring.tagger import Tagger
    from flavortag.training.bdt import fit_bdt
    from flavortag.training.data import prepare_data
    from flavortag.training.loop import fit_torch
    from flavortag.training.runtime import Distributed
    from flavortag.training.settings import TrainJob

    out = Path(args.out)
    t0 = time.perf_counter()
    if not all((out / f"{f}.parquet").is_file() for f in FLAVOURS):
        produce_samples(out, args.events, list(FLAVOURS), seed=args.seed, sqrt_s_gev=250.0, workers=args.workers,
                        progress=False, process="zh", n_jets=2, particle_flow=True)
    print(f"sample: {args.events} events ({2 * args.events} jets) per class in {out} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    paths = ",".join(str(out / f"{f}.parquet") for f in FLAVOURS)
    common = ["data=zh_jets", f"data.paths=[{paths}]", f"data.classes={CLASSES}", "data.max_tracks=48",
              f"trainer.max_epochs={args.epochs}", "trainer.progress=false", "trainer.checkpoint_every_steps=0"]
    setups = {
        "transformer_pf": ["model=transformer", "features=jet_pid"],
        "transformer_charged": ["model=transformer"],
        "transformer_pf_tuned": ["+experiment=transformer_zh_jets_tuned"],
        "transformer_charged_tuned": ["+experiment=transformer_zh_jets_tuned", "features=default"],
        "bdt_pid": ["model=bdt", "features=jet_pid"],
        "bdt": ["model=bdt"],
    }
    results = {}
    for name in args.taggers.split(","):
        t1 = time.perf_counter()
        run_dir = out / "runs" / name
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="train", overrides=[*common, *setups[name], f"output_dir={run_dir}"])
        job = TrainJob.from_config(OmegaConf.to_container(cfg, resolve=True))
        data = prepare_data(job)
        if job.model["name"] == "bdt":
            model, _ = fit_bdt(job, data)
        else:
            model, _ = fit_torch(job, data, run_dir, Distributed(False, "auto"))
        test = data.tensors["test"]
        results[name] = figures(Tagger.from_model(model, device="cpu").predict_tensors(test), test.labels, data.scheme)
        counts = {n: int((test.labels == k).sum()) for k, n in enumerate(data.scheme.names)}
        print(f"{name}: trained and scored in {time.perf_counter() - t1:.0f} s; test jets {counts}", flush=True)

    columns = list(next(iter(results.values())))
    print("\n| tagger | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, figs in results.items():
        cells = [(f"{v:.3f} +- {e:.3f}" if c in ("s_eff_at_ud10", "accuracy") else _rejection_text(v, e))
                 for c, (v, e) in figs.items()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for name in ("transformer_pf", "transformer_pf_tuned"):
        if name in results and "bdt_pid" in results:
            ratio = results[name]["c_rej_at_b80"][0] / results["bdt_pid"]["c_rej_at_b80"][0]
            print(f"\n{name} / bdt_pid, c rejection at 80% b: {ratio:.2f}")
    print(f"total wall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
