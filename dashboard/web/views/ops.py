"""Probes for Kubernetes: liveness (process up) and readiness (store reachable)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask_login import current_user

from dashboard.stores.errors import ProviderError
from dashboard.web.current import provider

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Anyone (the kubelet) learns the status; only operators learn which store and why:
    the store's address and errors are a map of the mesh for whoever can reach the probe."""
    store = provider()
    try:
        info = store.info()
    except ProviderError as error:
        current_app.logger.warning("readiness: store %s unavailable: %s", store.name, error)
        detail = {"store": store.name, "error": str(error)}
        return jsonify(status="unavailable", **_for_operators(detail)), 503
    if not info.healthy:
        current_app.logger.warning("readiness: store %s unhealthy", info.name)
    detail = {"store": info.name, "generation": info.generation}
    return jsonify(status="ready" if info.healthy else "unhealthy",
                   **_for_operators(detail)), 200 if info.healthy else 503


def _for_operators(detail: dict) -> dict:
    return detail if current_user.is_authenticated else {}
