"""``flavortag evaluate run_id=...``: metrics, plots, working points of a trained tagger (Hydra).

Config ``configs/evaluate.yaml``; the work is :func:`flavortag.evaluation.evaluate_run`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from flavortag.apps import CONFIG_DIR
from flavortag.apps.schema import check_config
from flavortag.errors import reported
from flavortag.evaluation import evaluate_run
from flavortag.metrics import format_comparison_table
from flavortag.metrics.tables import JET_TABLE_METRICS


@hydra.main(config_path=CONFIG_DIR, config_name="evaluate", version_base="1.3")
@reported
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``flavortag evaluate``: prints the metrics under the model's name."""
    check_config(cfg, "evaluate")  # before any data is read or any run opened
    model_name, flat = evaluate_run(cfg)
    if "test/auc_light" in flat:  # a jet tagger: its own columns, then the two-jet events if combined
        print(format_comparison_table({model_name: flat}, metrics=[
            m for m in JET_TABLE_METRICS if f"test/{m}" in flat]))
        if "events/acc" in flat:
            print(format_comparison_table({f"{model_name} (events from 2 jets)": flat}, prefix="events/"))
        return
    print(format_comparison_table({model_name: flat}))


if __name__ == "__main__":
    main()
