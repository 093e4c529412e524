"""Which EDM4hep layout an ``events`` tree holds, and the branch names flavortag reads from it.

Three layouts of podio ROOT files are known (docs/FORMAT.md, "EDM4hep"):

* ``edm4hep-1.0``: podio >= 0.17 branch names (relations ``_<Coll>_<relation>``,
  vector members ``_<Coll>_<member>``) and collection ids in the
  ``podio_metadata`` tree (``events___idTable``), so every relation's target
  collection is checked by id;
* ``fcc-delphes``: the same branch names without ``podio_metadata`` (the
  FCC-ee Delphes productions after Winter2023, e.g. ``_EFlowTrack_trackStates``);
* ``fcc-winter2023``: podio < 0.17 numbering (relations ``<Coll>#<N>``,
  vector members ``<Coll>_<N>``, numbered in the order the EDM4hep 0.7-0.10
  data model declares them, :data:`NUMBERED_RELATIONS`).

Collections are found by their type (``vector<edm4hep::...Data>``), not by
name, except where a type has several collections: the reconstructed particles
(:data:`PARTICLE_NAMES` first, else the one that is not ``Jet``) and the jets
(``Jet``). uproot only: the tree's streamers are read, no data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flavortag.io.errors import EventFormatError

#: Names of the reconstructed-particle collection, in order of preference.
PARTICLE_NAMES: tuple[str, ...] = ("ReconstructedParticles", "PandoraPFOs", "ReconstructedParticleCollection")
#: Name of the jet collection read by ``level="jet"`` (a ReconstructedParticle collection).
JET_NAME: str = "Jet"
#: podio < 0.17 numbering: relation ``<Coll>#<N>`` is the N-th of these (OneToMany, then OneToOne).
NUMBERED_RELATIONS: dict[str, tuple[str, ...]] = {
    "ReconstructedParticle": ("clusters", "tracks", "particles", "particleIDs", "startVertex", "particleIDUsed"),
    "Track": ("trackerHits", "tracks"),
    "MCParticle": ("parents", "daughters"),
    "MCRecoParticleAssociation": ("rec", "sim"),
}
#: podio < 0.17 numbering of vector members ``<Coll>_<N>``.
NUMBERED_VECTORS: dict[str, tuple[str, ...]] = {"Track": ("subDetectorHitNumbers", "trackStates", "dxQuantities")}
LAYOUTS: tuple[str, ...] = ("edm4hep-1.0", "fcc-delphes", "fcc-winter2023")

_DATA_TYPE = re.compile(r"^vector<edm4hep::(\w+)Data>$")


@dataclass(frozen=True)
class Layout:
    """Branch names of what flavortag reads from one EDM4hep ``events`` tree.

    ``types``: collection name -> EDM4hep type (``"Track"``, ...); ``ids``:
    collection name -> podio collection id where the file says
    (``podio_metadata``), else empty. Collections the file lacks are None.
    """

    name: str
    particles: str
    tracks: str
    states: str
    numbered: bool
    types: dict[str, str]
    leaves: frozenset[str]
    mc: str | None = None
    links: str | None = None
    link_rec: str = "from"
    link_sim: str = "to"
    jets: str | None = None
    dndx: str | None = None
    bz: str | None = None
    ids: dict[str, int] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)  # leaf name -> its full path in the tree

    def leaf(self, collection: str, member: str) -> str:
        """The leaf of a data member: ``Coll.member``."""
        return f"{collection}.{member}"

    def relation(self, collection: str, name: str) -> str:
        """The branch of a relation (``_Coll_name`` or ``Coll#N``)."""
        if self.numbered:
            return f"{collection}#{NUMBERED_RELATIONS[self.types[collection]].index(name)}"
        return f"_{collection}_{name}"

    def state(self, member: str) -> str:
        """The leaf of a track-state member (``D0``, ``covMatrix...``)."""
        return f"{self.states}.{member}"

    @property
    def pdg_member(self) -> str:
        """The reconstructed particles' PDG hypothesis (``PDG``; ``type`` before EDM4hep 0.99)."""
        return "PDG" if self.leaf(self.particles, "PDG") in self.leaves else "type"

    @property
    def cov_member(self) -> str:
        """The track states' covariance leaf: 15 or 21 numbers, ``covMatrix[N]`` or ``covMatrix.values[N]``.

        (Plain ``covMatrix`` / ``covMatrix.values``: a copy written by uproot,
        which cannot read back a leaf whose name ends in ``[N]``.)
        """
        for name in ("covMatrix.values[21]", "covMatrix[21]", "covMatrix.values[15]", "covMatrix[15]",
                     "covMatrix.values", "covMatrix"):
            if self.state(name) in self.leaves:
                return name
        raise KeyError(f"no covariance leaf in {self.states}")


def _collections(tree: object) -> dict[str, str]:
    """Collection name -> EDM4hep type: from ``vector<edm4hep::XData>`` branches, else from the members.

    A tree written by uproot (a copy of some branches, e.g. in the tests) has
    the leaves ``Coll.member`` but not the podio types: its collections are
    told from their members (:data:`_MEMBERS`).
    """
    found = {}
    for name in tree.keys(recursive=False):  # type: ignore[attr-defined]
        match = _DATA_TYPE.match(_class_name(tree[name]))  # type: ignore[index]
        if match and not name.startswith("_"):
            found[name] = match.group(1)
    members: dict[str, set[str]] = {}
    for leaf in tree.keys(recursive=True, full_paths=False):  # type: ignore[attr-defined]
        collection, dot, member = leaf.partition(".")
        if dot and not collection.startswith("_") and "#" not in collection:
            members.setdefault(collection, set()).add(member)
    leaves = set(tree.keys(recursive=True, full_paths=False))  # type: ignore[attr-defined]
    for collection, have in members.items():
        if collection in found or (collection.startswith("n") and collection[1:] in members):
            continue  # known, or uproot's counter branches nColl.member
        for kind, needed in _MEMBERS:
            if needed <= have:
                found[collection] = kind
                break
        else:
            if have == {"weight"}:
                linked = f"_{collection}_from.index" in leaves
                found[collection] = "RecoMCParticleLink" if linked else "MCRecoParticleAssociation"
    return found


def _class_name(branch: object) -> str:
    """A podio branch's class (``vector<edm4hep::TrackData>``), read without building its interpretation."""
    try:
        return str(branch.member("fClassName"))  # type: ignore[attr-defined]
    except (KeyError, AttributeError):
        return ""


#: Members that tell a collection's type when the file does not say it (first match wins).
_MEMBERS: tuple[tuple[str, set[str]], ...] = (
    ("ReconstructedParticle", {"energy", "charge", "tracks_begin"}),
    ("ReconstructedParticle", {"energy", "particles_begin"}),
    ("Track", {"trackStates_begin"}),
    ("MCParticle", {"PDG", "parents_begin"}),
    ("RecDqdx", {"dQdx.value"}),
)


def is_edm4hep_tree(tree: object) -> bool:
    """True when a tree holds EDM4hep collections (by type, or told from their members)."""
    return bool(_collections(tree))


def collection_ids(file: object) -> dict[str, int]:
    """Collection name -> id from ``podio_metadata`` (``events___idTable``), empty when absent."""
    try:
        table = file["podio_metadata"]["events___idTable"].array(library="ak", entry_stop=1)  # type: ignore[index]
    except (KeyError, ValueError, TypeError):
        return {}
    if not len(table):
        return {}
    return {str(n): int(i) for n, i in zip(table["m_names"][0], table["m_collectionIDs"][0])}


def _expected() -> str:
    return (f"expected a ReconstructedParticle collection ({', '.join(PARTICLE_NAMES)}) whose tracks relation "
            "(_<Coll>_tracks or <Coll>#1) points to a Track collection with track states "
            "(_<Tracks>_trackStates or <Tracks>_1)")


def detect_layout(file: object, tree: object, path: str) -> Layout:
    """The :class:`Layout` of ``tree``; :class:`EventFormatError` (one line) when it is none of :data:`LAYOUTS`."""
    types = _collections(tree)
    paths = {path.rpartition("/")[2]: path for path in tree.keys(recursive=True)}  # type: ignore[attr-defined]
    leaves = frozenset(paths)
    names = set(tree.keys(recursive=False))  # type: ignore[attr-defined]
    names |= {leaf.partition(".")[0] for leaf in leaves}  # a branch with its leaves, also in an uproot copy

    def unknown(why: str) -> EventFormatError:
        return EventFormatError(path, None, f"not an EDM4hep layout flavortag reads ({why}): found collections "
                                f"{sorted(types) or sorted(names)[:30]}; {_expected()}")

    particles_all = [n for n, t in types.items() if t == "ReconstructedParticle"]
    preferred = [n for n in PARTICLE_NAMES if n in particles_all]
    others = [n for n in particles_all if n != JET_NAME]
    particles = preferred[0] if preferred else (others[0] if len(others) == 1 else None)
    if particles is None:
        return _raise(unknown("no reconstructed particles" if not others else f"which of {others}?"))
    numbered = f"_{particles}_tracks" not in names
    tracks_all = [n for n, t in types.items() if t == "Track"]
    with_states = [n for n in tracks_all if (f"{n}_1" if numbered else f"_{n}_trackStates") in names]
    if len(with_states) != 1:
        return _raise(unknown("no Track collection with track states" if not with_states
                              else f"several Track collections {with_states}"))
    tracks = with_states[0]
    if numbered and f"{particles}#1" not in names:
        return _raise(unknown(f"no relation {particles}#1 nor _{particles}_tracks"))
    mc = next((n for n, t in types.items() if t == "MCParticle"), None)
    links = next((n for n, t in types.items() if t in ("MCRecoParticleAssociation", "RecoMCParticleLink")), None)
    rec, sim = ("rec", "sim") if links and types[links] == "MCRecoParticleAssociation" else ("from", "to")
    if links and not numbered and f"_{links}_{rec}" not in names:
        rec, sim = ("from", "to") if rec == "rec" else ("rec", "sim")
    dndx = next((n for n, t in types.items() if t == "RecDqdx" and f"_{n}_track" in names), None)
    ids = collection_ids(file)
    name = "fcc-winter2023" if numbered else ("edm4hep-1.0" if ids else "fcc-delphes")
    return Layout(
        name=name, particles=particles, tracks=tracks,
        states=f"{tracks}_1" if numbered else f"_{tracks}_trackStates",
        numbered=numbered, types=types, leaves=leaves, mc=mc, links=links, link_rec=rec, link_sim=sim,
        jets=JET_NAME if types.get(JET_NAME) == "ReconstructedParticle" else None,
        dndx=dndx, bz="magFieldBz" if "magFieldBz" in names else None, ids=ids, paths=paths,
    )


def _raise(error: EventFormatError) -> Layout:
    raise error
