# Callbacks: the BestEffortCallback table, the progress bar, and live() for live reconstruction.
from bluesky.callbacks.best_effort import BestEffortCallback

bec = BestEffortCallback()
if matplotlib.get_backend().lower() == "agg":
    bec.disable_plots()
session.subscribe("bec", bec)
session.enable_progress()
live = session.enable_live  # live() switches live reconstruction and the monitors on
