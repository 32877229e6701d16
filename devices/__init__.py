"""nanoct.devices: ophyd devices of the sub-um CT and the X-ray microscope.

Devices are thin views onto the digital twins in :mod:`nanoct.devices.sim`; a real-hardware
variant keeps the same component names. Build a whole instrument with :func:`sub_um_ct` or
:func:`xray_microscope`.
"""

from nanoct.devices.instrument import SubMicronCT, default_data_dir, sub_um_ct
from nanoct.devices.microscope import XRayMicroscope, xray_microscope
from nanoct.devices.sim.microscope import MicroscopeInstabilities
from nanoct.devices.sim.twin import Instabilities

__all__ = [
    "Instabilities",
    "MicroscopeInstabilities",
    "SubMicronCT",
    "XRayMicroscope",
    "default_data_dir",
    "sub_um_ct",
    "xray_microscope",
]
