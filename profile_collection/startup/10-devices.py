# The session: RunEngine (persistent scan_id), Tiled writing, suspenders, and the instruments.
from nanoct.profile import session_options_from_env
from nanoct.session import start_session

session = start_session(**session_options_from_env())
session.instrument("microscope")  # build the microscope's twin too
globals().update(session.namespace())  # RE, ct, microscope, runs, tube, rotation, flatpanel, ...
