"""Probes for Kubernetes: liveness (process up) and readiness (store reachable)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ..providers.errors import ProviderError
from . import provider

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    store = provider()
    try:
        info = store.info()
    except ProviderError as error:
        return jsonify(status="unavailable", store=store.name, error=str(error)), 503
    status = 200 if info.healthy else 503
    return jsonify(status="ready" if info.healthy else "unhealthy", store=info.name,
                   generation=info.generation), status
