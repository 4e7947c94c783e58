"""Status routes: the HTML welcome page, /status, /health, /stats, /metrics, /admin/reload."""

from __future__ import annotations

import html
from typing import Any

from dashboard.devstore.request import Reply, Request, store_unavailable
from dashboard.devstore.values import now_ms

_ENDPOINTS = {
    # what each release's welcome page lists (upstream's "Available Endpoints")
    "0.8": [
        "/ - This welcome page",
        "/status - JSON status endpoint",
        "/health - Health check endpoint",
        "/stats - KV store stats",
        "/kv/<key> - GET/PUT/DELETE key/value",
        '/kv/mget - POST body {"keys": ["a", "b"]}',
    ],
    "main": [
        "/kv?prefix=&start=&limit=&cursor= - Range scan keys with optional values/metadata",
        "/kv/watch?prefix=&since_revision=0 - Server-Sent Events key change feed",
        "/leases - POST to create, DELETE /leases/<id> to revoke",
        "/locks/<name>/acquire - POST to acquire a lease-backed lock",
    ],
}


def _server_status(req: Request) -> dict[str, Any]:
    """``Toska.Server.status()``; the ``unavailable`` hook makes the server not running."""
    cfg = req.config
    host, port = req.handler.server.server_address[:2]
    return {
        "status": "error" if cfg.unavailable else "running",
        "uptime": cfg.uptime_ms(),
        "config": {
            "host": host,
            "port": port,
            "env": "dev",
            "daemon": False,
            # dev-store extras (upstream's config map holds host/port/env/daemon)
            "server": "toska-kv devstore",
            "release": cfg.release,
            "mode": "current" if cfg.release == "main" else "legacy",
            "key_listing": not cfg.no_key_listing,
            "read_only": cfg.read_only,
            "read_auth": bool(cfg.tokens_for("read")),
            "write_auth": bool(cfg.tokens_for("write")),
            "max_body_bytes": cfg.max_body_bytes,
            "rate_limit_per_s": cfg.rate_limit_per_s,
            "delay_ms": cfg.delay_ms,
            "persistence": "memory",
        },
        "pid": "#PID<0.0.0>",
        "node": "nonode@nohost",
    }


def welcome(req: Request) -> Reply:
    status = _server_status(req)
    endpoints = _ENDPOINTS["0.8"] + (_ENDPOINTS["main"] if req.release == "main" else [])
    items = "\n".join(f"    <li>{html.escape(e)}</li>" for e in endpoints)
    page = (
        "<!DOCTYPE html>\n<html>\n<head>\n  <title>Toska Server</title>\n</head>\n<body>\n"
        "  <h1>Toska Server</h1>\n"
        f'  <div class="status {status["status"]}">\n'
        f"    <h2>Server Status: {status['status'].upper()}</h2>\n  </div>\n"
        f"  <h3>Available Endpoints:</h3>\n  <ul>\n{items}\n  </ul>\n</body>\n</html>\n"
    )
    return Reply(200, page.encode("utf-8"), content_type="text/html; charset=utf-8")


def status(req: Request) -> Reply:
    return Reply(200, _server_status(req))


def health(req: Request) -> Reply:
    healthy = not req.config.unavailable
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "timestamp": now_ms(),
        "uptime": req.config.uptime_ms(),
    }
    return Reply(200 if healthy else 503, body)


def _stats(req: Request) -> dict[str, Any]:
    store = req.store
    stats: dict[str, Any] = {
        "keys": store.stored_count(),
        "memory_words": 0,
        "aof_path": "(memory)",
        "aof_bytes": 0,
        "snapshot_path": "(memory)",
        "snapshot_bytes": 0,
        "snapshot_checksum": None,
        "snapshot_version": 1,
        "aof_version": 1,
        "sync_mode": "interval",
        "sync_interval_ms": 1000,
        "snapshot_interval_ms": 60_000,
        "ttl_check_interval_ms": req.handler.server.ttl_check_interval_ms,
        "compaction_interval_ms": 300_000,
        "compaction_aof_bytes": 10_485_760,
        "last_snapshot_at": None,
        "last_sync_at": None,
    }
    if req.release == "main":
        stats.update(
            revision=store.revision,
            leases=store.lease_count(),
            locks=store.lock_count(),
            **store.watch_stats(),
        )
    return stats


def stats(req: Request) -> Reply:
    if req.config.unavailable:
        raise store_unavailable()
    return Reply(200, _stats(req))


def metrics(req: Request) -> Reply:
    """Prometheus text, with upstream's metric names (0.9.1 and main)."""
    if req.config.unavailable:
        return Reply(503, b"# Metrics unavailable\n", content_type="text/plain; charset=utf-8")
    s = _stats(req)
    lines = [
        ("toska_keys_total", "Total number of keys in the store", "gauge", s["keys"]),
        ("toska_memory_words", "ETS memory usage in words", "gauge", s["memory_words"]),
        ("toska_aof_bytes", "Current AOF file size in bytes", "gauge", s["aof_bytes"]),
        ("toska_snapshot_bytes", "Current snapshot file size in bytes", "gauge", s["snapshot_bytes"]),
        ("toska_uptime_seconds", "Server uptime in seconds", "counter", req.config.uptime_ms() / 1000),
    ]
    text = "".join(f"# HELP {n} {h}\n# TYPE {n} {t}\n{n} {v}\n\n" for n, h, t, v in lines)
    text += "# HELP toska_server_info Server information\n# TYPE toska_server_info gauge\n"
    text += 'toska_server_info{version="0.9.1",env="dev"} 1\n'
    return Reply(200, text.encode(), content_type="text/plain; version=0.0.4; charset=utf-8")


def admin_reload(req: Request) -> Reply:
    return Reply(200, {"ok": True, "message": "Configuration reloaded"})
