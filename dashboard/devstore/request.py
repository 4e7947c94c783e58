"""What a route sees (``Request``) and gives back (``Reply``), independent of http.server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dashboard.devstore.wire import ApiError

if TYPE_CHECKING:
    from email.message import Message

    from dashboard.devstore.config import DevStoreConfig
    from dashboard.devstore.handler import DevStoreHandler
    from dashboard.devstore.store import DevStore

JSON = "application/json; charset=utf-8"


@dataclass
class Reply:
    """A complete answer; ``body`` is JSON-encoded unless it is already bytes."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON


@dataclass
class Request:
    """One parsed request, as upstream's Plug pipeline has it once the parsers ran.

    ``body`` is ``conn.body_params`` (``{"_json": x}`` for a JSON body that is not an
    object; empty without a JSON Content-Type); ``params`` is ``conn.params``, the
    query merged with the body, where the body wins.
    """

    handler: DevStoreHandler
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    headers: Message
    store: DevStore
    config: DevStoreConfig

    @property
    def params(self) -> dict[str, Any]:
        return {**self.query, **self.body}

    @property
    def release(self) -> str:
        assert self.config.release is not None
        return self.config.release

    def first_present(self, name: str, fallback: Any = None) -> Any:
        """Upstream's ``first_present([body[name], params[name], fallback])``."""
        for value in (self.body.get(name), self.params.get(name), fallback):
            if value is not None:
                return value
        return None


def store_unavailable() -> ApiError:
    """What upstream answers when the KV store process is down (the ``unavailable`` hook)."""
    return ApiError(503, "KV store unavailable", reason=":not_running")
