"""The import arrows of ../shared/DESIGN.md, checked on the source of every module.

One documented deviation: plans may import ``nanoct.recon`` (pure numpy/scipy analysis the
calibration and microscope plans share with the reconstruction; see nanoct.plans' docstring).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package folder -> (nanoct subpackages it may import, third-party modules it must not)
RULES = {
    "devices/sim": ({"devices.sim"}, {"ophyd", "bluesky", "tiled", "databroker"}),
    "devices": ({"devices"}, {"bluesky", "tiled", "databroker"}),
    "plans": ({"plans", "devices", "recon"}, {"tiled", "databroker"}),
    "callbacks": ({"callbacks", "recon"}, {"ophyd"}),
    "recon": ({"recon"}, {"bluesky", "ophyd", "tiled", "databroker", "event_model"}),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(folder: str):
    base = ROOT / folder
    for path in sorted(base.rglob("*.py")):
        if folder == "devices" and "sim" in path.relative_to(base).parts:
            continue  # devices/sim has its own, stricter rule
        yield path


@pytest.mark.parametrize("folder", sorted(RULES))
def test_imports_run_the_designed_way(folder):
    allowed, banned = RULES[folder]
    bad = []
    for path in _modules(folder):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in banned:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
            if name.startswith("nanoct."):
                sub = name.removeprefix("nanoct.")
                if not any(sub == a or sub.startswith(a + ".") for a in allowed):
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)
    assert list(_modules(folder)), f"no modules found under {folder}"
