# skywatch service image.
#   docker build -t skywatch .
#   docker compose run --rm skywatch python -m bot login   # once
#   docker compose up -d
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data \
    HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=8080

RUN useradd --create-home --uid 10001 skywatch \
    && mkdir -p /data && chown skywatch /data && chmod 0700 /data

WORKDIR /app
# Dependencies first, pinned, so that a code change does not reinstall them.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
RUN pip install --no-cache-dir --no-deps .

USER skywatch
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=60s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HEALTH_PORT', '8080') + '/healthz', timeout=4)"
# SIGTERM stops it cleanly: the watcher first, then delivery finishes what it has sent.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot", "run"]
