"""Former home of the runner; everything now lives in ``backends.sweep``."""

from backends.sweep import *  # noqa: F401,F403
from backends.sweep import __all__  # noqa: F401
from backends.sweep.journal import event_from_json, event_to_json  # noqa: F401
