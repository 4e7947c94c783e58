"""WSGI entry point for gunicorn: ``gunicorn dashboard.wsgi:app``."""

import sys

from . import create_app
from .config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    # One clear line in the pod's log instead of a traceback; the worker does not boot.
    print(f"toska-kv: {error}", file=sys.stderr, flush=True)
    sys.exit(2)
