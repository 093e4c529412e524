"""The data card of a made dataset (Markdown + JSON) and its ``generation.yaml``.

Everything in the card is read from the task and from ``checksums.json`` (the
counts :mod:`flavortag.benchmark.make` recorded while writing each file), so
the card says exactly what the files hold. Label purity: per split and class,
the fraction of events whose heavy-flavour content (the heaviest ``origin``
among the event's tracks: none, c or b) is the one the forced decay implies
(uds: none, cc: c, bb: b), with its binomial error; the full table of counts
is in the JSON.
"""

from __future__ import annotations

import json
import math
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from flavortag.benchmark.make import (
    CHECKSUMS,
    EVENT_ID,
    GENERATION,
    HEAVY_CONTENT,
    MakeResult,
    read_manifest,
)
from flavortag.benchmark.task import Task
from flavortag.classes import BB, CC, GG, UDS
from flavortag.io.atomic import atomic_output
from flavortag.metrics.discriminants import _FORMULA, _JET_FORMULA

CARD_MD = "datacard.md"
CARD_JSON = "datacard.json"
#: The heavy-flavour content each label code implies (column of :data:`HEAVY_CONTENT`): uds / light
#: and g none, cc / c a c hadron, bb / b a b hadron.
EXPECTED_CONTENT: dict[int, int] = {UDS: 0, CC: 1, BB: 2, GG: 0}
_VERSIONED = ("flavortag", "pythia8mc", "numpy", "awkward", "pyarrow")


def package_versions() -> dict[str, str]:
    """Versions of the packages the files depend on, and Python's."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def label_purity(task: Task, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per split, per class: events, purity and its error, counts by heavy content (see the module doc)."""
    out: dict[str, dict[str, Any]] = {}
    for split in task.all_splits():
        counts = np.zeros((len(task.classes), len(HEAVY_CONTENT)), np.int64)
        for name in manifest["splits"][split]["files"]:
            counts += np.asarray(manifest["files"][name]["purity_counts"], np.int64)
        rows: dict[str, Any] = {}
        for k, (flavour, code) in enumerate(zip(task.classes, task.scheme.codes)):
            n = int(counts[k].sum())
            good = int(counts[k, EXPECTED_CONTENT[code]]) if n else 0
            purity = good / n if n else math.nan
            rows[flavour] = {"events": n, "purity": purity,
                             "purity_err": math.sqrt(purity * (1 - purity) / n) if n else math.nan,
                             "heavy_content_counts": dict(zip(HEAVY_CONTENT, counts[k].tolist()))}
        out[split] = rows
    return out


def composition(task: Task, out_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Per split: events (records: jets for a jet task) and mean tracks per generated class, files, bytes."""
    out: dict[str, Any] = {}
    for split in task.all_splits():
        names = manifest["splits"][split]["files"]
        per_class: dict[str, Any] = {}
        for flavour in task.flavours:
            mine = [n for n in names if _file_class(n) == flavour]
            events = sum(manifest["files"][n]["n_events"] for n in mine)
            tracks = sum(manifest["files"][n]["n_tracks"] for n in mine)
            per_class[flavour] = {"events": events, "mean_tracks": tracks / events if events else math.nan,
                                  "files": len(mine), "bytes": sum((out_dir / n).stat().st_size for n in mine)}
        out[split] = {"classes": per_class, "files": len(names),
                      "bytes": sum(row["bytes"] for row in per_class.values()),
                      "ids_sha256": manifest["splits"][split]["ids_sha256"]}
    return out


def _file_class(name: str) -> str:
    """``test/bb-00001-of-00006.parquet`` -> ``bb``."""
    return Path(name).name.split(".")[0].split("-")[0]


def write_generation(task: Task, out_dir: Path, result: MakeResult) -> dict[str, Any]:
    """``generation.yaml``: the task, versions, Pythia settings, counts; one entry per make run."""
    from flavortag.generate.pythia_setup import pythia_settings

    path = out_dir / GENERATION
    previous = yaml.safe_load(path.read_text()) if path.is_file() else {}
    runs = list((previous or {}).get("make_runs", []))
    runs.append({"made_files": len(result.made), "verified_files": len(result.verified),
                 "made_events": result.n_events_made, "wall_s": round(result.wall_s, 1),
                 "workers": result.workers, "versions": package_versions(),
                 **({"reused_files": len(result.reused), "reused_from": result.reused_from} if result.reused else {})})
    content = {
        "task": task.raw,
        "versions": runs[0]["versions"],
        "pythia_settings": {name: pythia_settings(name, task.sqrt_s_gev, isr=task.isr, extra=list(task.pythia),
                                                  process=task.process) for name in task.flavours},
        "detector": task.detector.to_dict(),
        "test_variants": {v.split: {"detector": v.detector.to_dict(), "pythia_extra": list(v.pythia)}
                          for v in task.test_variants},
        "make_runs": runs,
    }
    with atomic_output(path) as tmp:
        Path(tmp).write_text(yaml.safe_dump(content, sort_keys=False))
    return content


def build_card(task: Task, out_dir: str | Path) -> dict[str, Any]:
    """The data card's content (JSON-serialisable) of a made dataset."""
    out = Path(out_dir)
    manifest = read_manifest(out)
    generation = yaml.safe_load((out / GENERATION).read_text())
    runs = generation["make_runs"]
    return {
        "name": task.name, "version": task.version, "description": task.description,
        "motivation": task.motivation,
        "composition": composition(task, out, manifest),
        "generation": {"process": task.process, "sqrt_s_gev": task.sqrt_s_gev, "isr": task.isr,
                       "seed": task.seed, "chunk_size": task.chunk_size,
                       "pythia_settings": generation["pythia_settings"], "detector": generation["detector"],
                       "versions": generation["versions"],
                       "first_make": {"wall_s": runs[0]["wall_s"], "workers": runs[0]["workers"],
                                      "events": runs[0]["made_events"]}},
        "record": "jet" if task.n_jets else "event",
        "level": task.level, "n_jets": task.n_jets, "schema": task.schema,
        "test_variants": [{"name": v.name, "split": v.split, "description": v.description,
                           "events_per_class": v.n_events, "detector_changes": dict(v.detector_changes),
                           "pythia": list(v.pythia[len(task.pythia):])} for v in task.test_variants],
        "label_definition": task.label_definition,
        "label_purity": label_purity(task, manifest),
        "input_fields": {k: list(v) for k, v in task.input_fields.items()},
        "truth_fields": list(task.truth_fields), "event_id": EVENT_ID,
        "metrics": {"f_c": task.metrics.f_c, "f_b": task.metrics.f_b,
                    "efficiencies": list(task.metrics.efficiencies), "headline": list(task.metrics.headline),
                    "robustness": list(task.metrics.robustness),
                    "discriminants": dict(_FORMULA) if task.scheme.is_event_scheme else dict(_JET_FORMULA)},
        "known_limits": list(task.known_limits), "licence": task.licence, "intended_use": task.intended_use,
        "checksums": CHECKSUMS,
    }


def card_markdown(card: dict[str, Any]) -> str:
    """The data card as Markdown."""
    lines = [f"# Data card: {card['name']} (version {card['version']})", "", card["description"], "",
             "## Motivation", "", card["motivation"], "", "## Composition", "",
             f"| split | {'forced decay' if card['n_jets'] else 'class'} | {card['record']}s | mean tracks | files | MB |",
             "|---|---|---:|---:|---:|---:|"]
    for split, part in card["composition"].items():
        for flavour, row in part["classes"].items():
            lines.append(f"| {split} | {flavour} | {row['events']} | {row['mean_tracks']:.2f} | "
                         f"{row['files']} | {row['bytes'] / 1e6:.1f} |")
    if card.get("test_variants"):
        lines += ["", "## Shifted test sets", "",
                  "Each is the first events of every class's test chunks, made with the task's seed and the "
                  "changes below (detector changes: the same Pythia events as that part of `test`, seen by "
                  "another detector). `score` gives each one's figures and the fraction kept against `test` "
                  "on the same chunks.", "",
                  "| variant | folder | events per class | changes | description |", "|---|---|---:|---|---|"]
        for v in card["test_variants"]:
            changes = ", ".join([f"{k} = {val}" for k, val in v["detector_changes"].items()]
                                + [f"Pythia `{line}`" for line in v["pythia"]])
            lines.append(f"| {v['name']} | `{v['split']}/` | {v['events_per_class']} | {changes} | {v['description']} |")
    gen = card["generation"]
    versions = ", ".join(f"{k} {v}" for k, v in gen["versions"].items())
    lines += ["", "## Generation", "",
              f"Process {gen['process']} at sqrt(s) = {gen['sqrt_s_gev']} GeV, ISR {'on' if gen['isr'] else 'off'}, "
              f"seed {gen['seed']}, chunks of {gen['chunk_size']} events"
              + (f", {card['n_jets']} exclusive Durham jets per event (one record per jet)" if card.get("n_jets") else "")
              + f"; detector `{gen['detector']['name']}` "
              "(all settings in generation.yaml).", "", f"Versions: {versions}.", "",
              f"First make: {gen['first_make']['events']} events in {gen['first_make']['wall_s']} s with "
              f"{gen['first_make']['workers']} worker process(es).", "",
              "## Labels", "", card["label_definition"], "",
              "Label purity: the fraction of records whose heaviest track `origin` (none, c, b) is the one the "
              "label implies (uds / light / g: none, cc / c: c, bb / b: b).", "",
              f"| split | label | {card['record']}s | purity | none | c | b |", "|---|---|---:|---:|---:|---:|---:|"]
    for split, rows in card["label_purity"].items():
        for flavour, row in rows.items():
            c = row["heavy_content_counts"]
            lines.append(f"| {split} | {flavour} | {row['events']} | {row['purity']:.5f} ± {row['purity_err']:.5f} "
                         f"| {c['none']} | {c['c']} | {c['b']} |")
    metrics = card["metrics"]
    lines += ["", "## Inputs and scoring", "",
              "Inputs: " + "; ".join(f"{'tracks' if level == 'track' else level} {', '.join(fields)}"
                                    for level, fields in card["input_fields"].items()) + ". Truth only (not inputs): "
              f"{', '.join(card['truth_fields'])}. Every {card['record']} has `{card['event_id']}`.", "",
              f"Discriminants: `{metrics['discriminants']['b']}` with f_c = {metrics['f_c']}, "
              f"`{metrics['discriminants']['c']}` with f_b = {metrics['f_b']}; rejections at signal "
              f"efficiencies {metrics['efficiencies']}; headline: {', '.join(metrics['headline'])}.", "",
              "## Known biases and limits", ""]
    lines += [f"- {item}" for item in card["known_limits"]]
    lines += ["", "## Licence", "", card["licence"], "", "## Intended use", "", card["intended_use"], "",
              f"Checksums: `{card['checksums']}` and `SHA256SUMS` (`sha256sum -c SHA256SUMS`).", ""]
    return "\n".join(lines)


def write_card(task: Task, out_dir: str | Path) -> dict[str, Any]:
    """Write ``datacard.json`` and ``datacard.md`` into a made dataset; returns the card."""
    out = Path(out_dir)
    card = build_card(task, out)
    with atomic_output(out / CARD_JSON) as tmp:
        Path(tmp).write_text(json.dumps(card, indent=1, allow_nan=True) + "\n")
    with atomic_output(out / CARD_MD) as tmp:
        Path(tmp).write_text(card_markdown(card))
    return card
