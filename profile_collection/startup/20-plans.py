# Every plan in the namespace: bluesky's and nanoct's.
import bluesky.plan_stubs as bps  # noqa: F401
import bluesky.plans as bp  # noqa: F401
import bluesky.preprocessors as bpp  # noqa: F401

from nanoct.plans import *  # noqa: F403
