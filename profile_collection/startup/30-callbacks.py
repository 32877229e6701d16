# Callbacks: the BestEffortCallback table, the progress bar, live() for live reconstruction,
# and recon() to reconstruct a run afterwards (nanoct recon from the session).
from bluesky.callbacks.best_effort import BestEffortCallback

bec = BestEffortCallback()
if matplotlib.get_backend().lower() == "agg":
    bec.disable_plots()
session.subscribe("bec", bec)
session.enable_progress()
live = session.enable_live  # live() switches live reconstruction and the monitors on
recon = session.reconstruct  # recon(-1, slices='240:272'): the latest run, into Tiled
