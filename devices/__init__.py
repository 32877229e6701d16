"""nanoct.devices: ophyd devices of the sub-um CT (and, later, the X-ray microscope).

Devices are thin views onto the digital twin in :mod:`nanoct.devices.sim`; a real-hardware
variant keeps the same component names. Build a whole instrument with :func:`sub_um_ct`.
"""

from nanoct.devices.instrument import SubMicronCT, default_data_dir, sub_um_ct
from nanoct.devices.sim.twin import Instabilities

__all__ = ["Instabilities", "SubMicronCT", "default_data_dir", "sub_um_ct"]
