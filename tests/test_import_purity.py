"""Importing any nanoct module opens no socket and starts no thread."""

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


def test_importing_every_module_has_no_side_effects():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 15
