"""WSGI entry point for gunicorn: ``gunicorn dashboard.wsgi:app``."""

import signal
import sys

from dashboard.settings.errors import ConfigError
from dashboard.web import live
from dashboard.web.app import create_app
from dashboard.web.startup import refuse_broken_setup

try:
    app = create_app()
    # a setup nobody could log in to stops the worker, as `toska-kv serve` does
    refuse_broken_setup(app.config["KV_SETTINGS"])
except ConfigError as error:
    # One clear line in the pod's log instead of a traceback; the worker does not boot.
    print(f"toska-kv: {error}", file=sys.stderr, flush=True)
    sys.exit(2)


def _end_live_streams_on_sigterm() -> None:
    """On SIGTERM, end the open live streams, then stop as gunicorn stops.

    gunicorn's worker installs its SIGTERM handler (a graceful stop) before it imports this
    module; chained here, a rolling restart no longer waits out the graceful timeout for
    every open live page, whose browser reconnects to another replica by itself.
    """
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):  # not under gunicorn: nothing to chain
        return

    def stop(signum, frame):
        live.end_streams()
        previous(signum, frame)

    signal.signal(signal.SIGTERM, stop)


_end_live_streams_on_sigterm()
