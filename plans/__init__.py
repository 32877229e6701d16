"""nanoct.plans: Bluesky plans of the sub-um CT and the X-ray microscope.

Deviation from ../shared/DESIGN.md's import arrows (plans -> devices, bluesky): the calibration
and microscope plans also import pure analysis functions from ``nanoct.recon`` (JIMA line-group
visibility, edge/spot metrics, centre of rotation and tilt, the parhelion score, Medipix2 noise
edges and trims). The reconstruction issue asks for one implementation shared by the plans and
the reconstruction; ``nanoct.recon`` imports only numpy/scipy, so the arrow adds no dependency
and no cycle. ``tests/test_import_directions.py`` checks every arrow, this one included.
"""

from nanoct.plans.calibration import (
    alignment_180,
    flux_stability,
    focal_spot_size,
    jima_resolution,
    wire_stability,
)
from nanoct.plans.ct import (
    CTSchedule,
    ScanDevices,
    ct_scan,
    dark_block,
    flat_block,
    plan_ct,
    projection,
    tomo_scan,
)
from nanoct.plans.laminography import laminography_scan
from nanoct.plans.microscope import (
    calibrate_magnification,
    equalize_thresholds,
    measure_flux,
    radiograph,
    threshold_scan,
)
from nanoct.plans.nano_ct import nano_ct_scan
from nanoct.plans.suspenders import flux_suspenders, install_flux_suspenders

__all__ = [
    "CTSchedule",
    "ScanDevices",
    "alignment_180",
    "calibrate_magnification",
    "ct_scan",
    "dark_block",
    "equalize_thresholds",
    "flat_block",
    "flux_stability",
    "flux_suspenders",
    "focal_spot_size",
    "install_flux_suspenders",
    "jima_resolution",
    "laminography_scan",
    "measure_flux",
    "nano_ct_scan",
    "plan_ct",
    "projection",
    "radiograph",
    "threshold_scan",
    "tomo_scan",
    "wire_stability",
]
