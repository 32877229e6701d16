"""nanoct.plans: Bluesky plans of the sub-um CT and the X-ray microscope."""

from nanoct.plans.calibration import (
    alignment_180,
    flux_stability,
    focal_spot_size,
    jima_resolution,
    wire_stability,
)
from nanoct.plans.ct import CTSchedule, ct_scan, dark_block, flat_block, plan_ct, projection
from nanoct.plans.microscope import (
    calibrate_magnification,
    equalize_thresholds,
    measure_flux,
    radiograph,
    threshold_scan,
)
from nanoct.plans.suspenders import flux_suspenders, install_flux_suspenders

__all__ = [
    "CTSchedule",
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
    "measure_flux",
    "plan_ct",
    "projection",
    "radiograph",
    "threshold_scan",
    "wire_stability",
]
