"""Sample production: Pythia 8 e+e- -> gamma*/Z -> q qbar through a parametric detector.

``generate_events`` makes one class in this process (tests, notebooks);
``produce_samples`` runs many processes and writes one file per class;
``flavortag generate ...`` (:mod:`flavortag.apps.generate`) is the Hydra app.
"""

from flavortag.generate.events import ChunkSpec, generate_events, plan_chunks
from flavortag.generate.production import ProductionResult, produce_samples
from flavortag.generate.thrust import thrust_axis

__all__ = [
    "ChunkSpec",
    "ProductionResult",
    "generate_events",
    "plan_chunks",
    "produce_samples",
    "thrust_axis",
]
