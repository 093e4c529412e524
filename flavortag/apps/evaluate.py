"""``flavortag evaluate run_id=...``: metrics, plots, working points of a trained tagger (Hydra).

Config ``configs/evaluate.yaml``; the work is :func:`flavortag.pipelines.evaluate.evaluate_run`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from flavortag.apps import CONFIG_DIR, plain
from flavortag.apps.schema import check_config
from flavortag.errors import reported
from flavortag.metrics import format_comparison_table
from flavortag.metrics.tables import JET_TABLE_METRICS
from flavortag.pipelines import evaluate as pipeline


def evaluate_run(cfg: DictConfig) -> tuple[str, dict[str, float]]:
    """Parse a composed evaluate config and run the evaluation; returns the model's name and the metrics."""
    return pipeline.evaluate_run(pipeline.EvaluateSettings.from_config(plain(cfg)))


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """As :func:`evaluate_run`; returns the flat metrics."""
    return evaluate_run(cfg)[1]


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
