"""The config schema: one dataclass per config group, the single source of its defaults, types and ranges.

``groups`` holds the groups shared by the apps and one schema per model;
``fields`` the value types and bounds; ``nodes`` the checker and
:func:`~flavortag.schema.nodes.defaults`. The typed settings
(:class:`flavortag.training.settings.TrainerSettings`) and the models'
``DEFAULTS`` are built from these schemas; the YAML files of ``configs/``
choose values (a test holds each group's default file equal to its schema).
The per-app schemas and the Hydra-facing checks live in
:mod:`flavortag.apps.schema`. Imports neither Hydra nor OmegaConf.
"""

from flavortag.schema.fields import bounds
from flavortag.schema.nodes import check_node, defaults

__all__ = ["bounds", "check_node", "defaults"]
