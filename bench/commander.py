"""Redis Commander beside the dashboard, on the same Redis: its key view and its key tree.

The issue's target is "a key page within 1.5x of Redis Commander's on the same Redis", so
the benchmark can run Redis Commander (the npm package ``redis-commander``, version
``VERSION``) against each Redis target and time, on its HTTP API, what its UI asks:

- **key**: ``GET /apiv2/key/<connection>/<key>``, the JSON its UI fetches when a key is
  clicked (``loadKey`` in ``web/static/scripts/redisCommander.js``; the page is then
  rendered in the browser from a cached template);
- **browse**: the ``GET /apiv2/keystree/<connection>/<prefix>?absolute=false`` calls its
  UI makes when a service's folder is opened, then the first sub-folder at each level
  (``:`` folds keys into folders) until a level holds keys only: the clicks to the first
  order documents on screen (``orders:`` → ``order:`` → ``2025:``). Each call SCANs the
  whole keyspace (its default: ``SCAN`` with ``COUNT`` 100) and asks ``TYPE`` of each key
  shown; it has no pages.

It is installed on demand with ``npm install --prefix DIR`` into a cache outside the repo
(``$TOSKA_KV_BENCH_CACHE``, else ``$XDG_CACHE_HOME/toska-kv-bench``, else
``~/.cache/toska-kv-bench``), never into the repo, and started with node on a free
127.0.0.1 port: no auth, ``--nosave --noload`` (no connection file is read or written),
``HOME`` in a temporary directory, ``NODE_ENV=production`` (as its Docker image). When npm
or node is missing, or the install fails, the benchmark says so and runs without it. The
commands it sent to Redis are counted from the servers' ``INFO commandstats`` (reset
before each measurement; ``INFO`` and ``CONFIG`` themselves are not counted).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import redis

from .targets import Target

PACKAGE = "redis-commander"
#: pinned: the API paths below were read from this version's source
VERSION = "0.9.0"
_INSTALL_TIMEOUT_S = 300
_START_TIMEOUT_S = 60
#: folders opened at most on the way to the first keys (``orders:order:2026:`` is 3)
_MAX_DEPTH = 6


def cache_root() -> Path:
    if os.environ.get("TOSKA_KV_BENCH_CACHE"):
        return Path(os.environ["TOSKA_KV_BENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "toska-kv-bench"


def install_dir() -> Path:
    return cache_root() / f"{PACKAGE}-{VERSION}"


def _script(directory: Path) -> Path:
    return directory / "node_modules" / PACKAGE / "bin" / "redis-commander.js"


def _installed_version(directory: Path) -> str | None:
    try:
        return json.loads((directory / "node_modules" / PACKAGE / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def ensure_installed(log: Any) -> tuple[Path | None, str]:
    """The path of its start script (installing it first if needed), or None and why not."""
    node = shutil.which("node")
    if node is None:
        return None, "node is not installed"
    directory = install_dir()
    if _installed_version(directory) == VERSION and _script(directory).exists():
        return _script(directory), ""
    npm = shutil.which("npm")
    if npm is None:
        return None, "npm is not installed"
    directory.mkdir(parents=True, exist_ok=True)
    log(f"installing {PACKAGE}@{VERSION} into {directory} (npm, once) ...")
    try:
        # --ignore-scripts: bcrypt's install script would fetch a prebuilt binary; Redis
        # Commander falls back to bcryptjs (only used for a password hash, not here)
        done = subprocess.run(
            [npm, "install", "--prefix", str(directory), "--no-audit", "--no-fund",
             "--omit=dev", "--ignore-scripts", "--loglevel=error", f"{PACKAGE}@{VERSION}"],
            capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S, check=False,
            stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"npm install {PACKAGE}@{VERSION} did not finish in {_INSTALL_TIMEOUT_S} s"
    if done.returncode != 0 or _installed_version(directory) != VERSION:
        return None, f"npm install {PACKAGE}@{VERSION} failed ({done.returncode}): {_npm_error(done)}"
    return _script(directory), ""


def _npm_error(done: subprocess.CompletedProcess[str]) -> str:
    """The telling lines of npm's error output (its code and message, not its advice)."""
    lines = []
    for line in (done.stderr or done.stdout or "").splitlines():
        text = line.removeprefix("npm error").removeprefix("npm ERR!").strip()
        if text and not text.startswith(("A complete log", "If you are behind", "network ",
                                         "This is a problem", "In most cases")):
            lines.append(text)
    return " / ".join(lines[:3])[:300] or "no error output"


def node_version() -> str | None:
    try:
        return subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10,
                              check=False).stdout.strip() or None
    except OSError:
        return None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Commander:
    """One Redis Commander process on one Redis target, and a client of its HTTP API."""

    def __init__(self, target: Target, script: Path, workdir: Path) -> None:
        self.target = target
        self.nodes = list(target.redis_cluster or ([target.redis_address] if target.redis_address
                                                    else []))
        if not self.nodes:
            raise ValueError(f"{target.name} is not a Redis target")
        port = _free_port()
        command = ["node", str(script), "--address", "127.0.0.1", "--port", str(port),
                   "--nosave", "--noload", "--redis-label", "bench"]
        if target.redis_cluster:
            command += ["--clusters", ",".join(f"{h}:{p}" for h, p in target.redis_cluster)]
        else:
            host, redis_port = target.redis_address  # type: ignore[misc]
            command += ["--redis-host", host, "--redis-port", str(redis_port)]
        home = workdir / "home"
        home.mkdir(parents=True)
        self.log_path = workdir / "redis-commander.log"
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "NODE_ENV": "production"}
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(command, cwd=workdir, env=env, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=600)
        self._stats = [redis.Redis(host=h, port=p, socket_timeout=30) for h, p in self.nodes]
        try:
            self.connection = self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> str:
        give_up = time.monotonic() + _START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Redis Commander exited ({self.process.returncode}): "
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                answer = self.client.get("/connections")
                connections = answer.json().get("connections") if answer.status_code == 200 else None
                if connections:
                    connection = connections[0]["conId"]
                    # connected (and warmed up): a key view answers
                    if self.client.get(f"/apiv2/key/{quote(connection, safe='')}/"
                                       "bench%3Ano-such-key").status_code == 200:
                        return connection
            except (httpx.TransportError, ValueError):
                pass
            if time.monotonic() > give_up:
                raise RuntimeError(f"Redis Commander not ready in {_START_TIMEOUT_S} s: "
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)

    # -- what its UI asks ----------------------------------------------------------

    def _get(self, path: str) -> httpx.Response:
        answer = self.client.get(path)
        if answer.status_code != 200:
            raise RuntimeError(f"Redis Commander: GET {path} answered {answer.status_code}: "
                               f"{answer.text[:300]}")
        return answer

    def key(self, key: str) -> dict[str, Any]:
        """The key view's call; timed by the caller. Facts: its answer's size."""
        answer = self._get(f"/apiv2/key/{quote(self.connection, safe='')}/{quote(key, safe='')}")
        details = answer.json()
        if details.get("key") != key or details.get("value") is None:
            raise RuntimeError(f"Redis Commander: key {key!r} answered {answer.text[:300]}")
        return {"bytes": len(answer.content), "type": details.get("type")}

    def browse(self, prefix: str) -> dict[str, Any]:
        """The tree calls from the folder ``prefix`` down its first folders to a level of keys."""
        calls: list[dict[str, Any]] = []
        current = prefix
        for _ in range(_MAX_DEPTH):
            began = time.perf_counter()
            answer = self._get(f"/apiv2/keystree/{quote(self.connection, safe='')}/"
                               f"{quote(current, safe='')}?absolute=false")
            nodes = answer.json()["data"]
            calls.append({"prefix": current, "entries": len(nodes), "bytes": len(answer.content),
                          "seconds": time.perf_counter() - began})
            folders = [node for node in nodes if node.get("children")]
            if not folders:
                break
            # the UI lists entries sorted by text: the first folder is the one opened next
            current += folders[0]["keyName"]
        shown = len(nodes)
        return {"tree_calls": len(calls), "keys_shown": shown, "calls": calls}

    # -- the commands it sent ------------------------------------------------------

    def reset_stats(self) -> None:
        for node in self._stats:
            node.config_resetstat()

    def commands(self) -> int:
        total = 0
        for node in self._stats:
            for name, stat in node.info("commandstats").items():
                command = name.removeprefix("cmdstat_").split("|")[0].lower()
                if command not in ("info", "config"):
                    total += int(stat["calls"])
        return total

    def close(self) -> None:
        self.client.close()
        for node in self._stats:
            node.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-redis-commander-") as tmp:
        yield Path(tmp)


def start_all(stack: ExitStack, started: list[Target], log: Any) -> tuple[dict[str, Commander],
                                                                           dict[str, Any]]:
    """A Redis Commander on each Redis target; and what to say in the report's header."""
    redis_targets = [t for t in started if t.redis_address or t.redis_cluster]
    meta: dict[str, Any] = {"package": PACKAGE, "version": VERSION, "targets": []}
    if not redis_targets:
        meta["skipped"] = "no Redis target"
        log("Redis Commander: skipped (no Redis target)")
        return {}, meta
    script, why = ensure_installed(log)
    if script is None:
        meta["skipped"] = why
        log(f"Redis Commander: skipped ({why}); the dashboard's figures are measured without it")
        return {}, meta
    meta["node"] = node_version()
    commanders: dict[str, Commander] = {}
    for target in redis_targets:
        try:
            commander = Commander(target, script, stack.enter_context(_workdir()))
        except RuntimeError as error:
            log(f"Redis Commander on {target.label}: skipped ({error})")
            meta.setdefault("failed", {})[target.name] = str(error)[:500]
            continue
        stack.callback(commander.close)
        commanders[target.name] = commander
        meta["targets"].append(target.name)
        log(f"  Redis Commander {VERSION} (node {meta['node']}) on {target.label}: {commander.url}")
    return commanders, meta
