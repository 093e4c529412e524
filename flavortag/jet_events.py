"""Event-level scores from jet scores: two-jet events tagged by both jets (no torch).

For an event whose jets all come from one flavour hypothesis ``H`` (Z -> bb:
both jets b; H -> gg: both g), the jets' class probabilities combine into
the event's: ``ln P(H | event) = sum_jets ln p_jet(H) + const``, normalised
over the hypotheses (a softmax of the summed log-probabilities). This treats
the jets as independent given the hypothesis and the training classes as
balanced (each jet posterior then divides by the same flat prior). The
hypotheses are the jet scheme's classes, read as event classes (light -> uds,
c -> cc, b -> bb, g -> gg), so on Z-pole qq events clustered into two jets the
combined scores compare directly with an event-level tagger's on the same events.

Jets belong to one event when they share ``decay_class`` (the file's forced
decay: event numbers restart in every file) and ``event``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flavortag.classes import ClassScheme, class_scheme
from flavortag.metrics import PROB_FLOOR


@dataclass(frozen=True)
class CombinedEvents:
    """Per-event results: ``probs [n_events, n_hypotheses]`` in ``scheme`` order, ``labels`` (output indices
    of the event's forced decay, -1 where the scheme has no such class), the event key and jet count."""

    probs: np.ndarray
    labels: np.ndarray
    decay_class: np.ndarray
    event: np.ndarray
    n_jets: np.ndarray
    scheme: ClassScheme


def combine_jets(jet_probs: np.ndarray, event: np.ndarray, decay_class: np.ndarray,
                 scheme: ClassScheme, n_jets: int | None = 2) -> CombinedEvents:
    """Combine the jets of each event (see the module doc); ``n_jets``: keep only events with that many.

    ``jet_probs [n_jets_total, len(scheme)]``; ``event`` and ``decay_class``
    per jet (the jet file's columns). The event scheme of the result is
    :func:`flavortag.classes.class_scheme` of the jet classes (``uds, cc, bb``
    for ``light, c, b``).
    """
    p = np.maximum(np.asarray(jet_probs, dtype=np.float64), PROB_FLOOR)
    event = np.asarray(event, dtype=np.int64)
    decay = np.asarray(decay_class, dtype=np.int64)
    keys = np.stack([decay, event], axis=1)
    unique, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    log_like = np.zeros((len(unique), p.shape[1]))
    np.add.at(log_like, inverse, np.log(p))
    log_like -= log_like.max(axis=1, keepdims=True)
    probs = np.exp(log_like)
    probs /= probs.sum(axis=1, keepdims=True)
    keep = np.ones(len(unique), bool) if n_jets is None else counts == n_jets
    event_scheme = class_scheme([_EVENT_NAME[c] for c in scheme.codes]) if len(scheme) == 3 else scheme
    labels = scheme.indices_of(unique[:, 0])
    return CombinedEvents(probs[keep], labels[keep], unique[keep, 0], unique[keep, 1], counts[keep],
                          event_scheme)


_EVENT_NAME = {0: "uds", 1: "cc", 2: "bb", 3: "gg"}
