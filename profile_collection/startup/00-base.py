# nanoct profile: the basics. Wiring only: no device classes or plans are defined here.
import logging
import os

import matplotlib
import numpy as np  # noqa: F401  (for the user)

if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    matplotlib.use("Agg")  # no display: figures go to PNGs, never an error

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
