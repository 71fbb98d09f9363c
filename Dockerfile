# skywatch service image. Build: docker build -t skywatch .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATA_DIR=/data

RUN useradd --create-home --uid 10001 skywatch \
    && mkdir -p /data && chown skywatch /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
RUN pip install --no-cache-dir .

USER skywatch
VOLUME ["/data"]
CMD ["python", "-m", "bot", "run"]
