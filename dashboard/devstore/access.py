"""Upstream's ``ensure_kv_access`` plug per release: which paths are guarded, by which
token scope, and the order auth -> rate limit -> read-only follower."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dashboard.devstore.wire import ApiError

if TYPE_CHECKING:
    from dashboard.devstore.request import Request


def auth_scope(release: str, method: str, path: str) -> str | None:
    """The token scope guarding ``path`` (the raw request path); None when unguarded.

    Main guards /kv*, /stats, /metrics, /leases*, /locks*, /admin/reload and
    /replication*; 0.9.1 guards /kv*, /stats and /replication*; 0.8 /kv* and /stats.
    """
    if release == "main":
        if path.startswith("/replication"):
            return "replication"
        if path == "/admin/reload":
            return "admin"
        if path in ("/stats", "/metrics"):
            return "read"
        if path.startswith(("/leases", "/locks")):
            return "write"
        if path.startswith("/kv"):
            if method == "POST" and path == "/kv/mget":
                return "read"
            return "write" if method in ("PUT", "POST", "DELETE") else "read"
        return None
    if path.startswith("/kv") or path == "/stats":
        return "read"
    if release == "0.9.1" and path.startswith("/replication"):
        return "replication"
    return None


def is_write(release: str, method: str, path: str) -> bool:
    """Whether a read-only follower refuses the request (403)."""
    if release == "main":
        return auth_scope(release, method, path) == "write"
    # 0.8 and 0.9.1 only know PUT and DELETE on keys as writes (a follower still
    # answers POST /kv/mget)
    return method in ("PUT", "DELETE") and path.startswith("/kv/")


def presented_tokens(req: Request) -> list[str]:
    """The tokens a request presents, as the release reads its headers."""
    authorization = req.headers.get("Authorization")
    alternative = req.headers.get("X-Toska-Token")
    if req.release == "main":
        # "Bearer <t>" (exactly that prefix) or the bare header value, then X-Toska-Token
        if authorization is not None and authorization.startswith("Bearer "):
            authorization = authorization[len("Bearer ") :]
        return [t for t in dict.fromkeys((authorization, alternative)) if t]
    # 0.8/0.9.1 compare each header with "<token>" and "Bearer <token>"
    tokens = []
    for header in (authorization, alternative):
        if header:
            tokens.append(header)
            if header.startswith("Bearer "):
                tokens.append(header[len("Bearer ") :])
    return tokens


def ensure_access(req: Request) -> None:
    """Run the release's access plug; raises the 401, 429 or 403 answer."""
    cfg = req.config
    scope = auth_scope(req.release, req.method, req.path)
    if scope is None:
        return
    if not cfg.authorized(scope, presented_tokens(req)):
        raise ApiError(401, "Unauthorized")
    # upstream's limiter sends no Retry-After header
    if cfg.bucket is not None and cfg.bucket.take():
        raise ApiError(429, "Rate limit exceeded")
    if cfg.read_only and is_write(req.release, req.method, req.path):
        raise ApiError(403, "Read-only follower")
