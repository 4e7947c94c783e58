"""WSGI entry point for gunicorn: ``gunicorn dashboard.wsgi:app``."""

import sys

from . import create_app
from .config import ConfigError
from .startup import refuse_broken_setup

try:
    app = create_app()
    # a setup nobody could log in to stops the worker, as `toska-kv serve` does
    refuse_broken_setup(app.config["KV_SETTINGS"])
except ConfigError as error:
    # One clear line in the pod's log instead of a traceback; the worker does not boot.
    print(f"toska-kv: {error}", file=sys.stderr, flush=True)
    sys.exit(2)
