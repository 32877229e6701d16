"""Importing any nanoct module opens no socket, starts no thread and creates no file."""

import os
import subprocess
import sys

SCRIPT = r"""
import importlib, pkgutil, socket, threading

def _refuse(*a, **k):
    raise AssertionError("a socket was used at import time")

socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.socket.bind = _refuse
socket.create_connection = _refuse
before = threading.active_count()
import nanoct, nanoct.devices, nanoct.plans, nanoct.callbacks, nanoct.recon
names = []
for pkg in (nanoct, nanoct.devices, nanoct.devices.sim, nanoct.plans, nanoct.callbacks,
            nanoct.recon):
    for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
        importlib.import_module(info.name)
        names.append(info.name)
assert threading.active_count() == before, threading.enumerate()
print(len(names))
"""


def _files(root):
    return sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
    )


def test_importing_every_module_has_no_side_effects(tmp_path):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XDG_", "MPL", "NANOCT_", "TILED_", "NUMBA_CACHE"))
    }
    # a fresh home and working directory: any file an import writes (caches, configuration,
    # data directories) lands in one of them; bytecode caches are Python's own, not ours
    env.update(HOME=str(home), PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=False, cwd=cwd,
        env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 40
    assert _files(home) == [] and _files(cwd) == []
