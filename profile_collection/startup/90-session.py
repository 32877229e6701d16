# IPython magics (%wa, %ct, %mov, %movr on labelled devices) and a summary.
from bluesky.magics import BlueskyMagics

get_ipython().register_magics(BlueskyMagics)  # noqa: F821
print(session.summary())
