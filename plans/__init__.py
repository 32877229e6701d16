"""nanoct.plans: Bluesky plans of the sub-um CT (and later the microscope)."""

from nanoct.plans.ct import CTSchedule, ct_scan, dark_block, flat_block, plan_ct, projection

__all__ = ["CTSchedule", "ct_scan", "dark_block", "flat_block", "plan_ct", "projection"]
