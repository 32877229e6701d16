"""The IPython profile: a real IPython session with nanoct's startup files, fed a script."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest

from nanoct.profile import prepare_profile, profile_dir, session_options_from_env
from nanoct.server import find_running_server, stop_server

pytestmark = pytest.mark.integration

SCRIPT = """\
%wa motors
%ct
plan = ct_scan(ct, num_angles=4, exposure_s=1.0, frames_per_projection=1, flat_every=4,
               num_darks=1, num_flats=1)
uid, = RE(plan)
session.writer.flush(60)
run = runs[uid]
print("READBACK", run["primary"]["flatpanel_image"].shape, run.metadata["start"]["plan_name"])
print("SCAN_ID", run.metadata["start"]["scan_id"])
names = ("bec", "bp", "bps", "ct_scan", "radiograph", "live", "recon", "microscope",
         "xm_medipix")
print("NAMES", all(n in globals() for n in names))
res = recon(-1, slices="256")
pngs = [p.name for p in res["previews"].values()]
print("RECON", res["key"] == uid + "-fdk", res["shape"], all(n.startswith(uid) for n in pngs))
"""


def test_profile_session_runs_magics_a_scan_and_reads_it_back(tmp_path):
    data = tmp_path / "data"
    script = tmp_path / "session.ipy"
    script.write_text(SCRIPT)
    cmd = [sys.executable, "-m", "nanoct.cli", "ipython", "--data-dir", str(data), "--",
           "--no-banner", "--colors=NoColor", str(script)]  # fmt: skip
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    finally:
        info = find_running_server(data)
        with contextlib.suppress(Exception):
            stop_server(data, timeout_s=10)
    out = res.stdout
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in out + res.stderr, (out + res.stderr)[-3000:]
    assert info is not None  # the session started the data directory's server itself
    # %wa: labelled motors with their real soft limits (the CT's SOD range) and offsets
    wa = out.split("Positioner", 1)[1]
    assert "manipulator_z" in wa and "0.5073" in wa and "200.0" in wa
    assert "xm_manipulator_z" in wa  # the microscope's, named apart from the CT's
    assert "AttributeError" not in wa
    # %ct: the labelled detectors were read
    assert "flatpanel_rotation_angle" in out
    # a ct_scan through the session's RunEngine, read back from Tiled in the same session
    assert "READBACK (4, 512, 512) ct_scan" in out
    assert "SCAN_ID 1" in out
    assert "NAMES True" in out
    # recon(): the latest run reconstructed from the session, into Tiled, with previews
    assert "RECON True (1, 512, 512) True" in out
    assert "reconstruct 100 % (1/1 slices" in res.stderr
    assert "nanoct session: data" in out  # the summary printed by 90-session.py


def test_profile_dir_and_its_copy(tmp_path):
    startup = sorted(p.name for p in (profile_dir() / "startup").glob("*.py"))
    assert startup == [
        "00-base.py",
        "10-devices.py",
        "20-plans.py",
        "30-callbacks.py",
        "90-session.py",
    ]
    target = prepare_profile(tmp_path / "ipy")
    (target / "startup" / "50-stale.py").write_text("raise SystemExit")
    prepare_profile(target)  # refreshed: stale files go, nanoct's are copied again
    assert sorted(p.name for p in (target / "startup").glob("*.py")) == startup
    # no class or plan is defined in the profile: it only wires nanoct together
    for name in startup:
        text = (profile_dir() / "startup" / name).read_text()
        assert "class " not in text and "def " not in text


def test_session_options_from_the_environment():
    env = {"NANOCT_DATA_DIR": "/x", "NANOCT_SEED": "3", "NANOCT_TIME_SCALE": "0.5"}
    assert session_options_from_env(env) == {"data_dir": "/x", "seed": 3, "time_scale": 0.5}
    with pytest.raises(ValueError, match=r"\$NANOCT_BINNING='two' is not a valid int"):
        session_options_from_env({"NANOCT_BINNING": "two"})
