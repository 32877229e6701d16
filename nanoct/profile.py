"""Where the IPython profile lives, and the session options it reads from the environment.

``nanoct ipython`` (or ``ipython --profile-dir=<repo>/profile_collection``) opens an IPython
session whose startup files call :func:`nanoct.session.start_session` with
:func:`session_options_from_env`. The profile's files only wire nanoct together; no device
class or plan is defined in them.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["ENV_OPTIONS", "prepare_profile", "profile_dir", "session_options_from_env"]

#: Environment variables the profile reads, the session option each sets, and its type.
ENV_OPTIONS: dict[str, tuple[str, type]] = {
    "NANOCT_DATA_DIR": ("data_dir", str),
    "NANOCT_TILED_URI": ("tiled_uri", str),
    "NANOCT_SPECIMEN": ("specimen", str),
    "NANOCT_SEED": ("seed", int),
    "NANOCT_BINNING": ("binning", int),
    "NANOCT_TIME_SCALE": ("time_scale", float),
}


def profile_dir() -> Path:
    """The directory of nanoct's IPython profile (``profile_collection``)."""
    return Path(str(resources.files("nanoct.profile_collection")))


def prepare_profile(target: str | Path) -> Path:
    """A writable IPython profile directory at `target` whose startup files are nanoct's.

    IPython writes its history, logs and pid files into the profile directory, so
    ``nanoct ipython`` does not point it at the installed package: it copies the startup
    files (replacing older copies, so an upgraded nanoct takes effect) into `target`.
    """
    import shutil

    target = Path(target)
    startup = target / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    source = profile_dir() / "startup"
    wanted = {p.name for p in source.glob("*.py")}
    for old in startup.glob("*.py"):
        if old.name not in wanted:
            old.unlink()
    for name in sorted(wanted):
        shutil.copyfile(source / name, startup / name)
    return target


def session_options_from_env(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for :func:`~nanoct.session.start_session` from ``NANOCT_*`` variables.

    Raises
    ------
    ValueError
        Naming the variable, if a value does not parse.
    """
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for var, (option, kind) in ENV_OPTIONS.items():
        text = env.get(var)
        if text is None or text == "":
            continue
        try:
            out[option] = kind(text)
        except ValueError as err:
            raise ValueError(f"${var}={text!r} is not a valid {kind.__name__}") from err
    return out
