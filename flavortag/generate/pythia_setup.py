"""Pythia 8 configuration for e+e- -> gamma*/Z -> q qbar, and seeding.

One Pythia instance produces one class: the Z (and gamma*) decays are
restricted to the quark flavours of that class with ``23:onMode = off`` and
``23:onIfAny = ...`` (Pythia applies the Z channel switches to the full
gamma*/Z interference, ``WeakZ0:gmZmode = 0``).

Initial-state radiation off the beams is off by default (``PDF:lepton = off``,
the beams collide at exactly ``sqrt_s``): at 250 GeV ISR would otherwise send
a large fraction of events back to the Z pole ("radiative return"), which
mixes two energies into one sample. ``isr=True`` restores Pythia's default
(electron PDFs with ISR). Final-state showers, hadronisation (Monash tune)
and all decays are Pythia's defaults: B, D, K0S, Lambda, ... decay with their
lifetimes and Pythia fills the production vertex (``vProd``, mm) of every
decay product, so b and c decay products are displaced (on by default; the
tests check that tracks from b hadrons start a median ~2 mm from the beam
line). Space-time vertices inside the hadronisation itself
(``Fragmentation:setVertices``, ``PartonVertex:setVertex``) stay off: they are
of order 1e-12 mm, far below any detector resolution.

Seeding. A chunk of events is identified by ``(seed, class, chunk index)``.
Every chunk restarts Pythia's random-number generator with
:func:`pythia_seed` (``Rndm::init``), so a chunk's events do not depend on
which process made it nor on what it made before; ``init()`` itself is run
with the chunk index ``-1`` seed, the same for every process. This relies on
Pythia carrying no state from event to event, true for these processes with
the default ``PhaseSpace:increaseMaximum = off`` (the tests check that a chunk
made after others equals the same chunk made first); extra settings that
make Pythia adapt during the run would break it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flavortag.classes import CLASS_NAMES, LABEL_NAMES, class_index

#: Quark PDG codes of each class (Z decay channels kept on).
FLAVOUR_QUARKS: dict[str, tuple[int, ...]] = {"uds": (1, 2, 3), "cc": (4,), "bb": (5,)}
#: Higgs decay products of each class of ``process="zh"`` (H decay channels kept on).
HIGGS_DECAYS: dict[str, tuple[int, ...]] = {"uds": (1, 2, 3), "cc": (4,), "bb": (5,), "gg": (21,),
                                            "ss": (3,), "ud": (1, 2)}
#: Generate-only flavours: their label code's name is another (``ud`` jets are light, code 0).
EXTRA_FLAVOURS: tuple[str, ...] = ("ud",)
#: The processes: ``qq`` e+e- -> gamma*/Z -> q qbar; ``zh`` e+e- -> ZH, Z -> nu nu, H forced.
PROCESSES: tuple[str, ...] = ("qq", "zh")
#: Offset of the ``zh`` seed streams (a zh chunk never reuses a qq chunk's seed).
_ZH_STREAM_OFFSET: int = 1_000_003
#: Offset of the streams of the zh flavours added by issue 25 (ss, ud): the older ones keep their seeds.
_ZH_NEW_STREAM_OFFSET: int = 2_000_029
#: Pythia accepts seeds 0 <= seed <= 900_000_000; 0 would mean "use the clock".
MAX_PYTHIA_SEED: int = 900_000_000
#: Chunks per (seed, class) stream that get distinct Pythia seeds.
CHUNKS_PER_STREAM: int = 250_000


def flavour_name(flavour: str | int) -> str:
    """Canonical class name (``uds``, ``cc``, ``bb``, ``gg``, ``ss``, or ``ud``) of a name, alias or index."""
    if isinstance(flavour, str) and flavour.strip().lower() in EXTRA_FLAVOURS:
        return flavour.strip().lower()
    return LABEL_NAMES[class_index(flavour)]


def stream_index(flavour: str | int) -> int:
    """The flavour's number in seeds: its label code, and 5 for ``ud`` (whose label code is 0)."""
    name = flavour_name(flavour)
    return len(LABEL_NAMES) + EXTRA_FLAVOURS.index(name) if name in EXTRA_FLAVOURS else class_index(name)


def check_process(process: str, flavour: str | int | None = None) -> str:
    """``process`` if it is one of :data:`PROCESSES` and makes ``flavour`` (``ValueError`` otherwise)."""
    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; use one of {', '.join(PROCESSES)}")
    if flavour is not None:
        name = flavour_name(flavour)
        table = FLAVOUR_QUARKS if process == "qq" else HIGGS_DECAYS
        if name not in table:
            raise ValueError(f"process {process} makes the classes {sorted(table)}, not {name!r}")
    return process


def pythia_seed(seed: int, flavour: str | int, chunk_index: int, process: str = "qq") -> int:
    """Pythia seed (1 .. 899_999_999) of one chunk; ``chunk_index=-1`` is the init seed.

    Distinct for all classes and all chunk indices below ``CHUNKS_PER_STREAM - 1``
    of one run (one ``seed``).
    """
    if not -1 <= chunk_index < CHUNKS_PER_STREAM - 1:
        raise ValueError(f"chunk index {chunk_index} out of range -1..{CHUNKS_PER_STREAM - 2}")
    if process == "qq":
        stream = int(seed) * len(CLASS_NAMES) + class_index(flavour)
    else:
        index = stream_index(flavour)
        if index < 4:  # uds, cc, bb, gg: the streams before issue 25
            stream = _ZH_STREAM_OFFSET + int(seed) * 4 + index
        else:
            stream = _ZH_NEW_STREAM_OFFSET + int(seed) * 2 + index - 4
    return (stream * CHUNKS_PER_STREAM + chunk_index + 1) % (MAX_PYTHIA_SEED - 1) + 1


def pythia_settings(
    flavour: str | int,
    sqrt_s_gev: float = 91.188,
    *,
    isr: bool = False,
    init_seed: int = 1,
    extra: Sequence[str] = (),
    process: str = "qq",
) -> list[str]:
    """The ``readString`` lines that configure one class of ``process`` at ``sqrt_s_gev``.

    ``process="qq"``: gamma*/Z -> q qbar of the class's quarks; ``"zh"``:
    ``HiggsSM:ffbar2HZ`` with Z -> nu nu (all three flavours) and the Higgs
    forced to the class's decay (bb, cc, gg, ss, ud = H -> u ubar, d dbar; uds =
    H -> d dbar, u ubar, s sbar in the ratio of their Pythia widths, mostly s sbar). ``extra`` lines are
    appended last (they override the defaults here).
    """
    check_process(process, flavour)
    if not 0 < init_seed < MAX_PYTHIA_SEED:
        raise ValueError(f"Pythia seed {init_seed} out of range 1..{MAX_PYTHIA_SEED - 1}")
    common = [
        "Print:quiet = on",
        "Next:numberCount = 0",
        "Beams:idA = 11",
        "Beams:idB = -11",
        f"Beams:eCM = {float(sqrt_s_gev)!r}",
        f"PDF:lepton = {'on' if isr else 'off'}",
    ]
    seeding = ["Random:setSeed = on", f"Random:seed = {int(init_seed)}"]
    if process == "zh":
        decays = HIGGS_DECAYS[flavour_name(flavour)]
        return [*common, "HiggsSM:ffbar2HZ = on", "23:onMode = off", "23:onIfAny = 12 14 16",
                "25:onMode = off", f"25:onIfAny = {' '.join(str(d) for d in decays)}",
                *seeding, *extra]
    quarks = FLAVOUR_QUARKS[flavour_name(flavour)]
    return [*common, "WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off",
            f"23:onIfAny = {' '.join(str(q) for q in quarks)}", *seeding, *extra]


def make_pythia(
    flavour: str | int,
    sqrt_s_gev: float = 91.188,
    *,
    seed: int = 1,
    isr: bool = False,
    extra: Sequence[str] = (),
    process: str = "qq",
) -> Any:
    """A silent, initialised ``pythia8mc.Pythia`` for one class of ``process`` (init seed from ``seed``)."""
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in pythia_settings(
        flavour, sqrt_s_gev, isr=isr, init_seed=pythia_seed(seed, flavour, -1, process), extra=extra,
        process=process,
    ):
        if not pythia.readString(line):
            raise ValueError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise RuntimeError(f"Pythia failed to initialise {process} {flavour_name(flavour)} at {sqrt_s_gev} GeV")
    return pythia
