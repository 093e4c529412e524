"""Experiments are tagged for MLflow 3's UI, samples are logged as dataset inputs, nothing else imports mlflow."""

from __future__ import annotations

from pathlib import Path

from flavortag import tracking

PACKAGE = Path(__file__).resolve().parents[2] / "flavortag"


def test_new_experiments_open_on_the_runs_table(tmp_path):
    import mlflow

    cfg = {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment_name": "kind-test"}
    experiment_id = tracking.configure(cfg)
    tags = mlflow.get_experiment(experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert tracking.configure(cfg) == experiment_id


def test_samples_are_dataset_inputs(tmp_path):
    cfg = {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment_name": "inputs"}
    with tracking.start_run(cfg, run_name="r") as run:
        run.log_dataset_input("zpole/train", "0123456789", {"uds": 7, "cc": 8, "bb": 9},
                                   "a.parquet,b.parquet", context="training")
    inputs = tracking.get_run(run.info.run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    assert (inputs[0].dataset.name, inputs[0].dataset.digest) == ("zpole/train", "0123456789")
    tags = {t.key: t.value for t in inputs[0].tags}
    assert tags["mlflow.data.context"] == "training"
    assert (tags["n_uds"], tags["n_cc"], tags["n_bb"]) == ("7", "8", "9")


def test_only_tracking_imports_mlflow():
    # tracking_pyfunc.py is the code of the logged MLflow model: MLflow runs it, no flavortag module
    # imports it (checked below), so it is tracking's, not a second door to MLflow
    # flavortag.tracking is a package (store, runs, read, models, tags): its modules may import mlflow
    def mlflow_side(p: Path) -> bool:
        return p.parent == PACKAGE / "tracking" or p == PACKAGE / "tracking_pyfunc.py"

    assert sorted(p.name for p in (PACKAGE / "tracking").glob("*.py")) != []
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if not mlflow_side(p) and any(line.strip().startswith(("import mlflow", "from mlflow"))
                                                      for line in p.read_text().splitlines())]
    assert offenders == []
    importers = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if "tracking_pyfunc" in "".join(line for line in p.read_text().splitlines()
                                                 if line.strip().startswith(("import", "from")))]
    assert importers == []
