"""The config schema of every Hydra app, checked before any data is read or any run is opened.

One dataclass per config group (``trainer``, ``data``, ``model`` per model, ...)
and one per app (:data:`APPS`). :func:`check_config` walks the composed config
of an app against its schema: an unknown key (typed wrongly, or appended with
``+``) is an error naming the closest valid key, a value of the wrong type, out
of its range or not among its choices is an error naming the key and what it
accepts, and each group's cross-field rules run (``embed_dim`` divisible by
``num_heads``, split fractions summing to 1). All raise
:class:`flavortag.errors.UsageError` (one line, exit status 2).
:func:`unknown_override` words Hydra's own refusal of a mistyped override
(``trainer.max_epoch=1``) the same way.

How to add a config key: give the dataclass of its group a field with the
YAML's default, typed with what the key accepts (``int``, ``float``, ``bool``,
``str``, ``Literal[...]`` for choices, ``X | None`` when null is allowed,
``list[X]``, another schema dataclass for a nested node); bounds go in
``field(default=..., metadata=bounds(ge=1))`` and apply to each number of a
list too; rules between fields go in the dataclass's ``check(values, key)``
(``values`` the node as a dict; raise ``ValueError`` with the message). A new
group: a new dataclass and a field of that type in each app that has the
group. A new model: a dataclass with ``name: Literal["<model>"]`` added to
:data:`ModelSchema`. A new app: its schema in :data:`APPS` and
``check_config(cfg, "<app>")`` first thing in its task function.
``tests/apps/test_config_schema.py`` composes every config option and checks it.

Modules: ``fields`` (value types, bounds), ``groups`` (the shared groups and
the models), ``apps`` (one schema per app), ``check`` (the checker).
"""

from flavortag.apps.schema.apps import APPS
from flavortag.apps.schema.check import check_config, check_values, unknown_override
from flavortag.schema.fields import bounds

__all__ = ["APPS", "bounds", "check_config", "check_values", "unknown_override"]
