"""nanoct.plans: Bluesky plans of the sub-um CT (and later the microscope)."""

from nanoct.plans.calibration import (
    alignment_180,
    flux_stability,
    focal_spot_size,
    jima_resolution,
    wire_stability,
)
from nanoct.plans.ct import CTSchedule, ct_scan, dark_block, flat_block, plan_ct, projection
from nanoct.plans.suspenders import flux_suspenders, install_flux_suspenders

__all__ = [
    "CTSchedule",
    "alignment_180",
    "ct_scan",
    "dark_block",
    "flat_block",
    "flux_stability",
    "flux_suspenders",
    "focal_spot_size",
    "install_flux_suspenders",
    "jima_resolution",
    "plan_ct",
    "projection",
    "wire_stability",
]
