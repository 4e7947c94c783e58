"""WSGI entry point for gunicorn: ``gunicorn dashboard.wsgi:app``."""

from . import create_app

app = create_app()
