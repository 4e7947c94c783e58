# In-cluster image: gunicorn serving the dashboard as a non-root user (uid 10001), able to
# run with a read-only root filesystem (deploy/kubernetes/ mounts an emptyDir at /tmp, and
# /var/lib/toska-kv, the data directory: the audit trail's SQLite file when no Redis is set).
FROM python:3.11-slim

# JSON logs (one line per request and per write, gunicorn's own lines too); /metrics sums
# gunicorn's workers
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    Dashboard__LogFormat=json \
    Dashboard__DataDirectory=/var/lib/toska-kv \
    PROMETHEUS_MULTIPROC_DIR=/tmp/kvdash-metrics

WORKDIR /app

# Dependencies first, so a code change does not reinstall them. gunicorn 25.1+ for
# --no-control-socket (below). setuptools builds in the source tree: its build/ and
# *.egg-info are removed in the same layer, so none of them stays in /app.
COPY pyproject.toml README.md ./
RUN mkdir dashboard && touch dashboard/__init__.py \
    && pip install . "gunicorn>=25.1" && pip uninstall -y toska-kv-dashboard \
    && rm -rf dashboard build *.egg-info

COPY dashboard ./dashboard
COPY templates ./templates
COPY static ./static
RUN pip install --no-deps . \
    && rm -rf build *.egg-info \
    && groupadd --system --gid 10001 dashboard \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin dashboard \
    && mkdir -p /var/lib/toska-kv && chown 10001:10001 /var/lib/toska-kv

USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"

# Threads, not many processes: each process keeps one pooled store client.
# 32 threads: an open live page holds one (SSE); Dashboard__MaxLiveStreams (20 by
# default) caps those per process, so 12 threads stay for ordinary requests.
# --no-control-socket: gunicorn 25.1+ otherwise opens a control socket for `gunicornc`
# under $HOME/.gunicorn, which this user has no writable home for (read-only root), and
# logs "Control server error" at every start; the dashboard does not use it.
# --worker-tmp-dir /dev/shm: worker heartbeat files on a tmpfs (writable with a read-only
# root, and never blocked by a slow disk).
# -c python:dashboard.gunicorn_conf: one line per request, in Dashboard__LogFormat: no
# gunicorn access log (the dashboard logs each request), gunicorn's own lines in the same
# format, everything on standard error. tests/test_deploy_image.py runs this line.
CMD ["sh", "-c", "exec gunicorn --bind 0.0.0.0:8080 --workers ${GUNICORN_WORKERS:-2} --threads ${GUNICORN_THREADS:-32} --timeout 120 --no-control-socket --worker-tmp-dir /dev/shm -c python:dashboard.gunicorn_conf dashboard.wsgi:app"]
