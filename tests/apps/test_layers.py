"""The floors of the house (docs/DESIGN.md, "Apps parse; pipelines run"): who may import what.

Read from the source text, as ``test_only_tracking_imports_mlflow`` does: every
import line, at the top of a module or inside a function.
"""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "flavortag"
#: Entry points above the apps: the dispatcher and the documented ``python -m`` modules.
ENTRY_POINTS = ("cli.py", "__main__.py", "train.py")


def _imports(path: Path) -> list[str]:
    """The modules ``path`` imports (``import a.b`` and ``from a.b import c``: ``a.b``), at any depth."""
    found = []
    for line in path.read_text().splitlines():
        match = re.match(r"\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", line)
        if match:
            found.append(match.group(1) or match.group(2))
    return found


def _modules(*, outside: tuple[str, ...]) -> list[Path]:
    """The package's modules, except those under the folders ``outside`` and the entry points."""
    return [p for p in sorted(PACKAGE.rglob("*.py"))
            if p.relative_to(PACKAGE).parts[0] not in outside
            and not (p.parent == PACKAGE and p.name in ENTRY_POINTS)]


def _offenders(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{p.relative_to(PACKAGE)}: {name}" for p in paths for name in _imports(p)
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


def test_only_the_apps_import_hydra_or_omegaconf() -> None:
    assert _offenders(_modules(outside=("apps",)), ("hydra", "omegaconf")) == []


def test_nothing_below_the_pipelines_imports_a_pipeline_or_an_app() -> None:
    assert _offenders(_modules(outside=("apps", "pipelines")), ("flavortag.apps", "flavortag.pipelines")) == []
    assert _offenders(_modules(outside=("apps",)), ("flavortag.apps",)) == []


def test_plotting_never_touches_mlflow() -> None:
    reporting = sorted((PACKAGE / "reporting").rglob("*.py"))
    assert reporting
    assert _offenders(reporting, ("mlflow", "flavortag.tracking")) == []
    text = [p.read_text() for p in reporting]
    assert not any(re.search(r"^from flavortag import .*\btracking\b", t, re.M) for t in text)


def test_the_checks_see_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from omegaconf import OmegaConf\n    import hydra.utils\n")
    assert _imports(module) == ["os", "omegaconf", "hydra.utils"]


def test_events_become_probabilities_in_one_place() -> None:
    """Tagger.predict is the scorer: no other module builds model inputs or calls the model itself."""
    calls = re.compile(r"\b(model_inputs|build_event_tensors|inference\.predict_proba)\(|"
                       r"from flavortag\.inference import [^\n]*\b(model_inputs|predict_proba)\b")
    users = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if calls.search(p.read_text()))
    # scoring/inference.py defines them, scoring/tagger.py is the scorer; batching/ defines the tensors and
    # training/ builds its own splits' inputs once
    assert [u for u in users if not u.startswith(("training/", "batching/"))] == ["scoring/inference.py", "scoring/tagger.py"], users


def test_the_apps_answer_help_and_check_configs_without_torch_mlflow_or_sklearn() -> None:
    """Every Hydra app imports its pipeline when it runs: ``--help`` and a config error cost a second, not ten."""
    import subprocess
    import sys

    apps = ("calibrate", "compare", "evaluate", "generate", "predict", "robustness", "train", "tune")
    code = ("import sys\n"
            + "".join(f"import flavortag.apps.{app}\n" for app in apps)
            + "from flavortag.training.settings import TrainJob\n"
            + "print([m for m in ('torch', 'mlflow', 'sklearn') if m in sys.modules])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout


def test_a_missing_input_file_is_said_before_torch_or_mlflow_is_imported(tmp_path: Path) -> None:
    """train, predict and calibrate refuse a mistyped file name before their heavy imports (a second, not ten)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from hydra import compose, initialize_config_dir\n"
        "from flavortag.apps import CONFIG_DIR\n"
        "from flavortag.apps.calibrate import calibrate\n"
        "from flavortag.apps.predict import predict\n"
        "from flavortag.apps.train import train\n"
        "cases = [(train, 'train', ['data.paths=[missing/uds.parquet]', 'output_dir=out']),\n"
        "         (predict, 'predict', ['checkpoint=best.pt', 'inputs=[missing.parquet]']),\n"
        "         (calibrate, 'calibrate', ['inputs=[missing.parquet]', 'out=c.json'])]\n"
        "for app, name, overrides in cases:\n"
        "    with initialize_config_dir(config_dir=CONFIG_DIR, version_base='1.3'):\n"
        "        cfg = compose(config_name=name, overrides=overrides)\n"
        "    try:\n"
        "        app(cfg)\n"
        "    except FileNotFoundError as exc:\n"
        "        print(name, 'missing' in str(exc), [m for m in ('torch', 'mlflow') if m in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.stdout.split("\n")[:3] == ["train True []", "predict True []", "calibrate True []"], proc.stderr
