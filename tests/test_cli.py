"""The `nanoct` command line: help everywhere, clear messages and meaningful exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nanoct.cli import build_parser, main
from nanoct.plan_registry import PLANS, find_plan
from nanoct.runplan import build_plan_parser, parameter_docs, plan_options

SUBCOMMANDS = ["info", "demo", "recon", "serve", "replay", "export", "run", "ipython", "live"]


def _nanoct(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nanoct.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_every_subcommand_is_known_to_the_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(SUBCOMMANDS) <= set(sub.choices)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command, capsys):
    try:
        code = main([command, "--help"])
    except SystemExit as exc:  # argparse's --help
        code = exc.code
    out = capsys.readouterr().out
    assert code == 0
    assert "usage:" in out.lower()


@pytest.mark.parametrize("name", sorted(PLANS))
def test_every_plan_has_help_with_its_parameters(name, capsys):
    assert main(["run", name, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"nanoct run {name}" in out
    for opt in plan_options(PLANS[name]):
        assert opt.flags[-1] in out


def test_run_lists_the_plans(capsys):
    assert main(["run", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in PLANS)


def test_unknown_command_is_a_usage_error():
    res = _nanoct("frobnicate")
    assert res.returncode == 2
    assert "invalid choice: 'frobnicate'" in res.stderr


def test_unknown_plan_is_a_clear_error():
    res = _nanoct("run", "bogus")
    assert res.returncode == 2
    assert "unknown plan 'bogus'" in res.stderr
    assert "ct" in res.stderr  # the known plans are named


def test_malformed_option_value_names_the_option():
    res = _nanoct("run", "ct", "--angles", "many")
    assert res.returncode == 2
    assert "--angles" in res.stderr and "'many'" in res.stderr


def test_unknown_option_is_a_usage_error():
    res = _nanoct("run", "ct", "--anglez", "3")
    assert res.returncode == 2
    assert "unrecognized arguments: --anglez" in res.stderr


def test_out_of_range_value_fails_before_anything_starts(tmp_path):
    data = tmp_path / "data"
    res = _nanoct("run", "ct", "--angles", "-3", "--data-dir", str(data), "--no-progress")
    assert res.returncode == 1
    assert "num_angles=-3" in res.stderr and ">= 1" in res.stderr
    # no server was started and no frame written for the bad invocation
    assert not (data / "server" / "server.json").exists()
    assert not list(data.rglob("*.h5"))


def test_plan_aliases_and_names():
    assert find_plan("ct_scan") is PLANS["ct"]
    assert find_plan("focal_spot_size") is PLANS["focal-spot"]
    args = build_plan_parser(PLANS["ct"]).parse_args(["--angles", "12", "--angles-deg", "0,90"])
    assert args.num_angles == 12 and args.angles_deg == [0.0, 90.0]


def test_parameter_docs_reads_numpydoc():
    doc = """Do it.

    Parameters
    ----------
    a : int
        The first. More words.
    b, c : float
        Both of
        them.

    Returns
    -------
    x
    """
    import inspect

    docs = parameter_docs(inspect.cleandoc(doc))
    assert docs == {"a": "The first", "b": "Both of them", "c": "Both of them"}


def test_docs_plans_page_is_current():
    from pathlib import Path

    from nanoct.runplan import plans_markdown

    page = Path(__file__).resolve().parents[1] / "docs" / "plans.md"
    assert page.read_text() == plans_markdown(), (
        "docs/plans.md is stale: regenerate it (see nanoct.runplan.plans_markdown)"
    )
