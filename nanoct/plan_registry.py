"""The user-facing plans, by the short names the CLI and the IPython profile know them by.

One table, so ``nanoct run PLAN``, ``nanoct run --list`` and the profile's namespace cannot
disagree. Each entry names the plan function (imported lazily: reading the table imports no
plan module), the instrument it drives (``"ct"`` or ``"microscope"``), the specimen the twin
should hold for it (None: the caller's choice), and the option aliases the CLI accepts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["PLANS", "SPECIMENS", "PlanEntry", "find_plan"]


@dataclass(frozen=True)
class PlanEntry:
    """One user-facing plan."""

    name: str  # CLI name, e.g. "ct"
    target: str  # "module:function"
    instrument: str  # "ct" or "microscope"
    summary: str
    specimen: str | None = None  # the twin specimen this plan needs (None: any)
    aliases: dict[str, str] = field(default_factory=dict)  # CLI option -> parameter

    @property
    def function_name(self) -> str:
        return self.target.split(":", 1)[1]

    def load(self) -> Callable:
        """Import and return the plan function."""
        module, func = self.target.split(":", 1)
        return getattr(importlib.import_module(module), func)


PLANS: dict[str, PlanEntry] = {
    e.name: e
    for e in (
        PlanEntry(
            "ct",
            "nanoct.plans.ct:ct_scan",
            "ct",
            "the paper's CT: darks, interleaved flat blocks, averaged projections, reference wire",
            aliases={"angles": "num_angles"},
        ),
        PlanEntry(
            "focal-spot",
            "nanoct.plans.calibration:focal_spot_size",
            "ct",
            "focal-spot size at the 10 % isodose from an edge at magnification ~1000",
            specimen="edge",
        ),
        PlanEntry(
            "jima",
            "nanoct.plans.calibration:jima_resolution",
            "ct",
            "JIMA-like chart: finest resolved line group (detail recognisability)",
            specimen="jima",
        ),
        PlanEntry(
            "flux-stability",
            "nanoct.plans.calibration:flux_stability",
            "ct",
            "bright images over time: relative flux and parhelion score",
        ),
        PlanEntry(
            "alignment",
            "nanoct.plans.calibration:alignment_180",
            "ct",
            "rotation-axis position and tilt from a 0/180 deg pair",
        ),
        PlanEntry(
            "wire-stability",
            "nanoct.plans.calibration:wire_stability",
            "ct",
            "the reference wire over time: focal-spot drift in um",
        ),
        PlanEntry(
            "threshold-scan",
            "nanoct.plans.microscope:threshold_scan",
            "microscope",
            "Medipix2 counts vs lower threshold per pixel (S-curves, noise edge)",
        ),
        PlanEntry(
            "equalize",
            "nanoct.plans.microscope:equalize_thresholds",
            "microscope",
            "choose the 3-bit trims so the per-pixel noise edges align; store and apply them",
        ),
        PlanEntry(
            "radiograph",
            "nanoct.plans.microscope:radiograph",
            "microscope",
            "X-ray microscope image: summed frames, bright-field corrected",
        ),
        PlanEntry(
            "magnification",
            "nanoct.plans.microscope:calibrate_magnification",
            "microscope",
            "object pixel size and magnification from the 6 um glass fibres",
            specimen="fibres",
        ),
        PlanEntry(
            "flux",
            "nanoct.plans.microscope:measure_flux",
            "microscope",
            "EPMA source flux in photons/mm^2/s at 1 m from open-beam counts",
        ),
        PlanEntry(
            "nano-ct",
            "nanoct.plans.nano_ct:nano_ct_scan",
            "microscope",
            "CT with the EPMA source and the counting detector (bright fields every N, drift "
            "reference)",
            specimen="fibres",
            aliases={"angles": "num_angles"},
        ),
        PlanEntry(
            "laminography",
            "nanoct.plans.laminography:laminography_scan",
            "ct",
            "CT about an axis tilted by --tilt-deg, for flat specimens (sub-um CT)",
            specimen="flat_chip",
            aliases={"angles": "num_angles", "tilt": "tilt_deg"},
        ),
        PlanEntry(
            "xm-laminography",
            "nanoct.plans.laminography:laminography_scan",
            "microscope",
            "laminography with the X-ray microscope",
            specimen="flat_chip",
            aliases={"angles": "num_angles", "tilt": "tilt_deg"},
        ),
    )
}

#: Specimens each instrument's twin knows.
SPECIMENS: dict[str, tuple[str, ...]] = {
    "ct": ("chip", "jima", "fibres", "edge", "flat_chip"),
    "microscope": ("fibres", "bristles", "facets", "wire", "edge", "flat_chip"),
}


def find_plan(name: str) -> PlanEntry:
    """The entry called `name` (its CLI name or its function name).

    Raises
    ------
    KeyError
        With the known names, if there is none.
    """
    if name in PLANS:
        return PLANS[name]
    for entry in PLANS.values():  # the first entry of a function shared by two instruments
        if entry.function_name == name or entry.name == name.replace("_", "-"):
            return entry
    known = ", ".join(sorted(PLANS))
    raise KeyError(f"unknown plan {name!r}; known plans: {known} (nanoct run --list)")
