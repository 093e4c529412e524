"""Issue 22: one source of each default. The schema holds it; the YAML default files choose the same.

Each group's default YAML file is compared key by key with its schema's
defaults, the typed trainer settings and the models' ``DEFAULTS`` are the
schema's, so a default changed in one place and not the other fails here.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from flavortag.apps import CONFIG_DIR
from flavortag.schema import defaults
from flavortag.schema import groups as g

#: (default YAML of a group, its schema); keys the YAML leaves out take the schema's default.
DEFAULT_FILES = [
    ("trainer/default.yaml", g.TrainerSchema),
    ("model/mlp.yaml", g.MLPSchema),
    ("model/deepsets.yaml", g.DeepSetsSchema),
    ("model/transformer.yaml", g.TransformerSchema),
    ("model/bdt.yaml", g.BDTSchema),
    ("evaluate/default.yaml", g.EvaluateSchema),
    ("paths/default.yaml", g.PathsSchema),
    ("tracking/local.yaml", g.TrackingSchema),
    ("augment/none.yaml", g.AugmentSchema),
    ("detector/ild.yaml", g.DetectorSchema),
]
#: Free text, not a setting.
FREE_TEXT = {"description", "source"}


@pytest.mark.parametrize(("name", "schema"), DEFAULT_FILES, ids=[n for n, _ in DEFAULT_FILES])
def test_default_yaml_chooses_the_schemas_defaults(name: str, schema: type) -> None:
    node = yaml.safe_load((Path(CONFIG_DIR) / name).read_text())
    node = {k: v for k, v in node.items() if k != "defaults" and k not in FREE_TEXT}
    expected = defaults(schema)
    differ = {k: (v, expected.get(k, "<not in schema>")) for k, v in node.items() if expected.get(k) != v}
    assert not differ, f"{name} differs from {schema.__name__}: {differ}"


def test_trainer_settings_and_model_defaults_are_the_schemas() -> None:
    from flavortag.models import MODELS
    from flavortag.training.settings import TrainerSettings

    settings = TrainerSettings()
    node = defaults(g.TrainerSchema)
    assert settings.checkpoint_every_steps == node["checkpoint_every_steps"] == 200
    assert settings.max_epochs == node["max_epochs"] and settings.lr == node["lr"]
    assert {f.name for f in fields(TrainerSettings)} == set(node)
    for name, cls in MODELS.items():
        assert cls.DEFAULTS == defaults(cls.SCHEMA, drop=("name",)), name
    assert MODELS["deepsets"].DEFAULTS["pooling"] == ["sum", "mean"]


def test_model_keys_are_checked_against_the_schema_once() -> None:
    from flavortag.models import build_model

    with pytest.raises(ValueError, match=r"unknown key model\.poolin; did you mean model\.pooling\?"):
        build_model({"name": "deepsets", "poolin": "sum"}, 4, 2)
    from flavortag.apps.schema import check_values

    # the app's check and the library's are one check: the same words for the same mistake
    for bad in ({"name": "deepsets", "poolin": "sum"}, {"name": "transformer", "embed_dim": 30},
                {"name": "mlp", "dropout": -0.5}):
        with pytest.raises(ValueError) as in_app:
            check_values({"model": bad}, "train")
        with pytest.raises(ValueError) as in_library:
            build_model(bad, 4, 2)
        assert str(in_app.value) == str(in_library.value), bad
