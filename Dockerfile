# In-cluster image: gunicorn serving the dashboard as a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir dashboard && touch dashboard/__init__.py \
    && pip install . && pip uninstall -y toska-kv-dashboard && rm -rf dashboard build

COPY dashboard ./dashboard
COPY templates ./templates
COPY static ./static
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --no-create-home dashboard

USER 10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"

# Threads, not many processes: each process keeps one pooled store client.
CMD ["sh", "-c", "exec gunicorn --bind 0.0.0.0:8080 --workers ${GUNICORN_WORKERS:-2} --threads ${GUNICORN_THREADS:-8} --timeout 120 --access-logfile - --error-logfile - dashboard.wsgi:app"]
