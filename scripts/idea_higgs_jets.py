"""A jet tagger trained on flavortag's own IDEA samples, tried on the FCC-ee Winter2023 Higgs jets.

Issue 23's check of the EDM4hep path, without tuning to the file:

1. ``flavortag generate process=zh level=jet detector=idea`` makes ZH(nu nu)
   H -> bb / cc / gg / uds jets at sqrt(s) = 240 GeV with the IDEA-like
   parametric tracker (``configs/detector/idea.yaml``);
2. ``flavortag train`` trains a jet tagger on them (light, c, b, g);
3. its b working point at 80 % b efficiency is taken from its own held-out
   jets (the cut on D_b);
4. the jets of ``tests/data/edm4hep/test_FCC_Winter2023.root`` (100 ZH
   events, all H -> bb; Delphes IDEA; read with the EDM4hep reader, tracks
   with their measured sigma(d0), sigma(z0)) are scored with
   :class:`flavortag.Tagger`, and the fraction passing that cut is printed,
   split by the jets' truth labels (from the MC record).

Usage: ``python scripts/idea_higgs_jets.py [--jets-per-class 4000] [--epochs 6]``
(about 5 minutes on 2 cores with the defaults).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from main_job import run  # the README's way to run a command, with its time

ROOT = Path(__file__).resolve().parents[1]
FILE = ROOT / "tests" / "data" / "edm4hep" / "test_FCC_Winter2023.root"
FLAVOURS = ("uds", "cc", "bb", "gg")


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jets-per-class", type=int, default=4000, help="ZH events per H decay (2 jets each)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--model", default="deepsets")
    parser.add_argument("--workdir", default="outputs/idea_higgs_jets")
    args = parser.parse_args()
    work = (ROOT / args.workdir).resolve()
    sample = work / "zh_idea_jets"
    if not (sample / "generation.yaml").exists():
        run(["generate", "process=zh", "sqrt_s=240", "level=jet", "detector=idea",
                  f"flavours=[{','.join(FLAVOURS)}]", f"n_events={args.jets_per_class // 2}", f"out={sample}"])
    run_dir = work / f"train_{args.model}"
    paths = ",".join(str(sample / f"{f}.parquet") for f in FLAVOURS)
    if not (run_dir / "checkpoints" / "best.pt").exists():  # a rerun reuses the sample and the tagger
        run(["train", "data=zh_jets", f"data.paths=[{paths}]", "data.name=zh_idea_jets", "detector=idea",
                  f"model={args.model}", f"trainer.max_epochs={args.epochs}", "trainer.progress=false",
                  f"output_dir={run_dir}", f"tracking.tracking_uri=sqlite:///{work / 'mlflow.db'}",
                  "tracking.experiment_name=idea_higgs_jets"])

    import flavortag as ft
    from flavortag.dataset import DataSettings
    from flavortag.evaluation import held_out_events
    from flavortag.io import read_events
    from flavortag.safe_load import load_torch_file

    best = run_dir / "checkpoints" / "best.pt"
    tagger = ft.Tagger.load(best, device="cpu")
    test = held_out_events(DataSettings.of_run(load_torch_file(best)["config"]))
    own = tagger.score(test)
    labels = np.asarray(test["label"])
    d_b = np.asarray(own["D_b"])
    cut = float(np.quantile(d_b[labels == 2], 0.2))  # 80 % of the b jets above it
    print(f"\nown test jets: {len(labels)}; 80% b working point: D_b > {cut:.3f}; "
          f"there c eff {np.mean(d_b[labels == 1] > cut):.3f}, light eff {np.mean(d_b[labels == 0] > cut):.3f}, "
          f"g eff {np.mean(d_b[labels == 3] > cut):.3f}")

    jets = read_events(FILE, level="jet")
    scores = tagger.score(jets)
    passed = np.asarray(scores["D_b"]) > cut
    truth = np.asarray(jets["label"])
    print(f"\n{FILE.name}: {len(jets)} jets (truth from the MC record: "
          + ", ".join(f"{n} {int(np.sum(truth == k))}" for k, n in enumerate(("light", "c", "b", "g"))) + ")")
    for k, name in enumerate(("light", "c", "b", "g")):
        sel = truth == k
        if sel.any():
            print(f"  {name:>5} jets: {int(passed[sel].sum())} of {int(sel.sum())} tagged b "
                  f"({passed[sel].mean():.1%}) at the 80% b working point")
    print(f"  all jets: {int(passed.sum())} of {len(passed)} ({passed.mean():.1%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
