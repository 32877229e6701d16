"""``nanoct run PLAN [--option value ...]``: any user-facing plan as a scripted command.

The options of each plan are read from its signature (type hints and defaults), so every
parameter a plan takes is an option of the command (``num_angles`` -> ``--num-angles``), with
the aliases of :mod:`nanoct.plan_registry` (``--angles``). Instrument options (``--specimen``,
``--binning``, ``--seed``, ``--time-scale``) build the twin; data options (``--data-dir``,
``--uri``, ``--api-key``) choose where the run goes, exactly as :func:`nanoct.session.start_session`
does (the data directory's own server is started when none runs).
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanoct.plan_registry import PLANS, SPECIMENS, PlanEntry, find_plan

logger = logging.getLogger(__name__)

__all__ = ["PlanRun", "build_plan_parser", "list_plans", "plan_options", "run_plan"]

#: Parameters every plan takes that the command sets itself (not options).
_RESERVED = {"md"}


@dataclass(frozen=True)
class PlanOption:
    """One plan parameter exposed as a command-line option."""

    parameter: str
    flags: tuple[str, ...]
    kind: str  # "int", "float", "bool", "str", "floats"
    default: Any
    required: bool


@dataclass
class PlanRun:
    """What :func:`run_plan` did: the runs it made and where their results are."""

    plan: str
    uids: tuple[str, ...]
    tiled_uri: str
    data_dir: Path
    result: Any = None
    pngs: list[Path] = field(default_factory=list)


def _kind(annotation: Any) -> str | None:
    """The option kind of a type hint (None: not expressible on a command line)."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _kind(inner[0]) if len(inner) == 1 else None
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    if annotation is str:
        return "str"
    if origin is not None and args and args[0] in (float, int):
        from collections.abc import Sequence as _Seq

        if origin in (list, tuple, _Seq):
            return "floats"
    return None


def plan_options(entry: PlanEntry) -> list[PlanOption]:
    """The command-line options of a plan, from its signature."""
    func = entry.load()
    hints = typing.get_type_hints(func)
    reverse = {param: alias for alias, param in entry.aliases.items()}
    out = []
    params = list(inspect.signature(func).parameters.values())[1:]  # [0] is the instrument
    for p in params:
        if p.name in _RESERVED or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        kind = _kind(hints.get(p.name, Any))
        if kind is None:
            continue
        flags = ["--" + p.name.replace("_", "-")]
        if p.name in reverse:
            flags.insert(0, "--" + reverse[p.name])
        required = p.default is inspect.Parameter.empty
        default = None if required else p.default
        out.append(PlanOption(p.name, tuple(flags), kind, default, required))
    return out


def _float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {text!r}"
        ) from err


def _md_item(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def parameter_docs(doc: str) -> dict[str, str]:
    """First sentence of each parameter's description in a numpydoc ``Parameters`` section."""
    lines = doc.splitlines()
    out: dict[str, str] = {}
    try:
        start = next(i for i, ln in enumerate(lines[:-1]) if ln.strip() == "Parameters") + 2
    except StopIteration:
        return out
    names: list[str] = []
    for ln in lines[start:]:
        if ln.strip() and not ln.startswith(" ") and ":" not in ln and names:
            break  # the next section's title
        if ln.strip().startswith("---"):
            break
        if ln and not ln.startswith(" "):
            names = [n.strip() for n in ln.split(":", 1)[0].split(",")]
            continue
        text = ln.strip()
        for n in names:
            if text and not out.get(n, "").endswith("."):
                out[n] = (out.get(n, "") + " " + text).strip()
    return {k: v.split(". ")[0].rstrip(".") for k, v in out.items()}


def build_plan_parser(entry: PlanEntry) -> argparse.ArgumentParser:
    """The parser of ``nanoct run <entry.name>``."""
    func = entry.load()
    doc = inspect.getdoc(func) or ""
    parser = argparse.ArgumentParser(
        prog=f"nanoct run {entry.name}",
        description=f"{entry.summary}.\n\nRuns nanoct.plans {entry.function_name}(...). "
        f"{doc.split(chr(10) * 2, 1)[0]}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plan = parser.add_argument_group(f"{entry.function_name} parameters")
    types_ = {"int": int, "float": float, "str": str, "floats": _float_list}
    docs = parameter_docs(doc)
    for opt in plan_options(entry):
        what = docs.get(opt.parameter, "").replace("%", "%%")
        if opt.kind == "bool":
            plan.add_argument(
                *opt.flags,
                dest=opt.parameter,
                action=argparse.BooleanOptionalAction,
                default=opt.default,
                help=f"{what} (default {opt.default})",
            )
            continue
        plan.add_argument(
            *opt.flags,
            dest=opt.parameter,
            type=types_[opt.kind],
            default=opt.default,
            required=opt.required,
            metavar=opt.kind.upper() if opt.kind != "floats" else "X,Y,...",
            help=f"{what} (required)" if opt.required else f"{what} (default {opt.default})",
        )
    inst = parser.add_argument_group("instrument (the digital twin)")
    inst.add_argument(
        "--specimen",
        default=entry.specimen,
        choices=SPECIMENS[entry.instrument],
        help=f"specimen in the twin (default {entry.specimen or SPECIMENS[entry.instrument][0]})",
    )
    inst.add_argument("--seed", type=int, default=0, help="seed of the twin (default 0)")
    if entry.instrument == "ct":
        inst.add_argument(
            "--binning",
            type=int,
            default=4,
            choices=(1, 2, 4),
            help="flat-panel binning (default 4)",
        )
    inst.add_argument(
        "--time-scale",
        type=float,
        default=0.0,
        help="wall seconds per instrument second; 0 = as fast as possible (default 0)",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", default=None, help="nanoct data directory")
    data.add_argument("--uri", default=None, help="Tiled server (default: the data directory's)")
    data.add_argument("--api-key", default=None, help="Tiled API key")
    data.add_argument(
        "--md",
        type=_md_item,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata for the run's start document (repeatable; VALUE parsed as JSON if it can)",
    )
    data.add_argument("--no-progress", action="store_true", help="no progress bar on the terminal")
    return parser


def list_plans() -> str:
    """One line per plan: name, instrument, summary."""
    width = max(len(n) for n in PLANS)
    return "\n".join(f"{e.name:<{width}}  [{e.instrument}]  {e.summary}" for e in PLANS.values())


def _check_value(name: str, value: Any, kind: str) -> None:
    import math

    if kind in ("int", "float") and not math.isfinite(value):
        raise ValueError(f"--{name.replace('_', '-')}={value!r} must be a finite number")


def run_plan(
    name: str,
    argv: Sequence[str] = (),
    *,
    callbacks: Sequence[Any] = (),
) -> PlanRun:
    """Parse `argv` for plan `name`, run it in a session, and say where the results went.

    Raises
    ------
    KeyError
        If the plan is unknown.
    SystemExit
        From argparse, on a malformed option (message on stderr, status 2).
    ValueError
        If a parameter is out of range (raised by the plan before anything moves).
    """
    entry = find_plan(name)
    args = build_plan_parser(entry).parse_args(list(argv))
    plan_kwargs = {}
    for opt in plan_options(entry):
        value = getattr(args, opt.parameter)
        if value is None and not opt.required:
            continue
        _check_value(opt.parameter, value, opt.kind)
        plan_kwargs[opt.parameter] = value
    if args.time_scale < 0:
        raise ValueError(f"--time-scale={args.time_scale!r} must be >= 0")

    from nanoct.config import resolve_data_dir
    from nanoct.session import start_session

    layout = resolve_data_dir(args.data_dir)
    twin = {"seed": args.seed, "time_scale": args.time_scale, "data_dir": layout.frames_dir}
    if entry.instrument == "ct":
        from nanoct.devices import sub_um_ct

        instrument = sub_um_ct(specimen=args.specimen or "chip", binning=args.binning, **twin)
        binning = args.binning
    else:
        from nanoct.devices import xray_microscope

        if args.specimen is not None:
            twin["specimen"] = args.specimen
        instrument = xray_microscope(name_prefix="xm_", **twin)  # as in the session
        binning = 4  # the session's CT (built alongside) keeps its default
    func = entry.load()
    gen = func(instrument, md=dict(args.md) or None, **plan_kwargs)
    # Plans validate every parameter before their first message: take that message now, so
    # bad input is a plain error before any server, RunEngine, motion or acquisition starts.
    first = next(gen)

    cbs = [c for c in callbacks if c is not None]
    if not args.no_progress:
        cbs.append(_progress_callback())
    session = start_session(
        layout.root,
        tiled_uri=args.uri,
        api_key=args.api_key,
        instrument=instrument if entry.instrument == "ct" else None,
        seed=args.seed,
        binning=binning,
        time_scale=args.time_scale,
        callbacks=[c for c in cbs if c is not None],
    )
    if entry.instrument == "microscope":
        session.microscope = instrument
    try:
        holder: dict[str, Any] = {}

        def plan():
            holder["result"] = yield from _resume(gen, first)

        uids = tuple(session.RE(plan()))
        session.writer.flush(timeout_s=120)
        base = str(session.runs.uri).split("/api/v1", 1)[0]
        return PlanRun(
            plan=entry.name,
            uids=uids,
            tiled_uri=f"{base}/api/v1",
            data_dir=session.layout.root,
            result=holder.get("result"),
        )
    finally:
        session.close()


def _resume(gen, first):
    """Relay a plan generator whose first message was already taken (``first``)."""
    msg = first
    while True:
        try:
            resp = yield msg
        except GeneratorExit:
            gen.close()
            raise
        except BaseException as exc:  # thrown in by the RunEngine: hand it to the plan
            try:
                msg = gen.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            msg = gen.send(resp)
        except StopIteration as stop:
            return stop.value


def _progress_callback():
    """The terminal progress bar of the live-callbacks package, if it is there."""
    try:
        from nanoct.callbacks.progress import ProgressBar
    except ImportError:  # pragma: no cover - the callbacks package provides it
        return None
    return ProgressBar()


def format_result(result: Any) -> list[str]:
    """Printable ``key: value`` lines of a plan's returned scalars."""
    if not isinstance(result, dict):
        return []
    import numpy as np

    lines = []
    for key, value in result.items():
        v = np.asarray(value) if not isinstance(value, str) else value
        if isinstance(v, str):
            lines.append(f"{key}: {v}")
        elif v.ndim == 0 and v.dtype.kind in "biuf":
            lines.append(f"{key}: {v.item():.6g}")
    return lines


def plans_markdown() -> str:
    """``docs/plans.md``: every user-facing plan with its parameters, from the plans
    themselves (signature, defaults, numpydoc), so the page cannot drift from the code.

    Regenerate with ``python -c "from nanoct.runplan import plans_markdown as m;
    open('docs/plans.md', 'w').write(m())"``; a test checks the page is current.
    """
    out = [
        "# Plans",
        "",
        "Every user-facing plan, with its parameters (generated from the code by",
        "`nanoct.runplan.plans_markdown`; `nanoct run PLAN --help` shows the same). In Python:",
        "`RE(plan(instrument, **parameters))` with the instrument of `sub_um_ct()` (CT) or",
        "`xray_microscope()` (microscope); on the command line:",
        "`nanoct run NAME --parameter value`.",
        "Every plan validates its parameters before its first message: bad input raises a",
        "`ValueError` naming the parameter, the value and the allowed range before anything moves.",
        "",
    ]
    for entry in PLANS.values():
        func = entry.load()
        doc = inspect.getdoc(func) or ""
        docs = parameter_docs(doc)
        out += [
            f"## `{entry.function_name}` (`nanoct run {entry.name}`, {entry.instrument})",
            "",
            doc.split("\n\n", 1)[0].replace("\n", " "),
            "",
        ]
        if entry.specimen:
            out += [f"Needs the `{entry.specimen}` specimen in the twin.", ""]
        out += ["| parameter | default | meaning |", "|---|---|---|"]
        params = list(inspect.signature(func).parameters.values())[1:]
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            default = "required" if p.default is inspect.Parameter.empty else f"`{p.default!r}`"
            meaning = docs.get(p.name, "").replace("|", "\\|").replace("\n", " ")
            out.append(f"| `{p.name}` | {default} | {meaning} |")
        out.append("")
    return "\n".join(out)
