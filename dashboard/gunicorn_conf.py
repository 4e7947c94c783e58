"""gunicorn's settings in the image: ``gunicorn -c python:dashboard.gunicorn_conf ...``.

One line per request, in ``Dashboard:LogFormat``: gunicorn writes no access log (the
dashboard logs every request itself on ``dashboard.request``, with its endpoint, operator
and request id), and gunicorn's own lines (start, workers, signals, errors) take the
dashboard's format, on standard error as the dashboard's lines do.

An entry point like ``wsgi.py``, loaded by gunicorn's master before any worker: it reads the
settings but never imports the app (``dashboard.web``). gunicorn takes every module-level
name that is one of its settings (here ``accesslog`` and ``logger_class``) as that setting.
"""

from __future__ import annotations

import logging
import os

from gunicorn.glogging import Logger as _GunicornLogger
from pythonjsonlogger.json import JsonFormatter

from dashboard.settings.errors import ConfigError
from dashboard.settings.load import load_settings

#: the dashboard logs each request (``dashboard.web.logs``); gunicorn's would be a second line
accesslog = None


def _log_format() -> str:
    """``Dashboard:LogFormat``, as the workers read it."""
    try:
        return load_settings().dashboard.log_format
    except ConfigError:
        # the worker says what is wrong in one line and stops (wsgi.py); until then, the
        # environment's word (names are case-insensitive, as .NET reads them)
        said = [value for name, value in os.environ.items()
                if name.lower() in ("dashboard__logformat", "dashboard:logformat")]
        return "json" if said and said[-1].strip().lower() == "json" else "text"


def _formatter(log_format: str) -> logging.Formatter:
    """The lines of ``dashboard.web.logs.formatter`` (tests/test_deploy_image.py compares)."""
    if log_format == "json":
        return JsonFormatter("%(levelname)s %(name)s %(message)s",
                             rename_fields={"levelname": "level", "name": "logger"},
                             timestamp="time")
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")


class _Logger(_GunicornLogger):
    """gunicorn's logger, its error log in ``Dashboard:LogFormat``."""

    def setup(self, cfg) -> None:  # also on a reload (SIGHUP)
        super().setup(cfg)
        line = _formatter(_log_format())
        for handler in self.error_log.handlers:
            handler.setFormatter(line)


logger_class = _Logger
