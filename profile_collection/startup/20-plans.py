# Every plan in the namespace: bluesky's modules and nanoct's plans, by their public names.
import bluesky.plan_stubs as bps  # noqa: F401
import bluesky.plans as bp  # noqa: F401
import bluesky.preprocessors as bpp  # noqa: F401

import nanoct.plans

globals().update({name: getattr(nanoct.plans, name) for name in nanoct.plans.__all__})
