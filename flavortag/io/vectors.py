"""The track momenta as ``vector`` records: :func:`momenta`.

The track records carry both a momentum (``E, px, py, pz``) and a reference
point (``x, y, z``); naming them ``Momentum4D`` directly fails, as ``x, y, z``
are also vector's coordinate names. :func:`momenta` zips the momentum fields
alone. ``vector`` is imported only when it is called (``flavortag.io`` stays
free of it otherwise).
"""

from __future__ import annotations

from typing import Any

import awkward as ak

__all__ = ["momenta"]


def momenta(events: Any) -> ak.Array:
    """The four-momenta of the tracks as ``vector`` ``Momentum4D`` records (``px, py, pz, E`` in GeV).

    ``events`` is an event array (its ``tracks`` field is used) or the track
    list itself; the result has the same ``var *`` structure, so
    ``ak.sum(momenta(events), axis=1).mass`` is each event's visible mass. The
    reference point, the truth fields and the files are untouched.
    """
    import vector

    vector.register_awkward()
    tracks = events["tracks"] if "tracks" in ak.fields(events) else events
    return ak.zip({"px": tracks["px"], "py": tracks["py"], "pz": tracks["pz"], "E": tracks["E"]},
                  with_name="Momentum4D")
