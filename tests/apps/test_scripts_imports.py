"""The scripts in scripts/ name flavortag functions that exist (a renamed function would break them silently:
no test runs every script)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _flavortag_imports() -> list[tuple[str, str, str]]:
    """``(script, module, name)`` of every ``from flavortag... import name`` in scripts/ (any depth), but for
    the fallbacks of an ``except ImportError`` (a script that also walks older versions of the code)."""
    found = []
    for path in sorted(SCRIPTS.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        fallbacks = {id(inner) for handler in ast.walk(tree) if isinstance(handler, ast.ExceptHandler)
                     for inner in ast.walk(handler)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "flavortag"
                    and id(node) not in fallbacks):
                found += [(path.name, node.module, alias.name) for alias in node.names]
    return found


def test_every_flavortag_name_a_script_imports_exists() -> None:
    imports = _flavortag_imports()
    assert len(imports) > 50  # the scripts do use the library
    missing = []
    for script, module, name in imports:
        try:
            mod = importlib.import_module(module)
        except ImportError as err:
            missing.append(f"{script}: {module} ({err})")
            continue
        if not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{script}: {module}.{name}")
    assert not missing, missing
