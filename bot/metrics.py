"""Metrics in Prometheus' text format, and the tiny HTTP server for /healthz and /metrics.

Counters count what this process did since it started (Prometheus handles restarts);
gauges are read when scraped (the outbox from the database, the watcher's connection).
No client library: the format is a few lines of text, and the server answers two GETs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field

__all__ = ["HealthServer", "Metrics"]

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
REQUEST_TIMEOUT = 5.0  # seconds a client may take to send its request line
MAX_REQUEST = 8192  # bytes of request head read


@dataclass(slots=True)
class Metrics:
    """What the service counts; `render` writes them for Prometheus."""

    posts: int = 0  # new or edited posts processed
    flagged: int = 0
    incidents: int = 0  # created
    alerts: dict[str, int] = field(default_factory=dict)  # outcome → messages
    latency_counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latency_sum: float = 0.0
    latency_total: int = 0
    gauges: dict[str, Callable[[], Awaitable[float]]] = field(default_factory=dict)

    def alert(self, outcome: str) -> None:
        """Count one message by outcome: sent, edited, notice, failed, dropped, retried."""
        self.alerts[outcome] = self.alerts.get(outcome, 0) + 1

    def latency(self, seconds: float) -> None:
        """Record how long a new alert waited from due to sent."""
        for n, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.latency_counts[n] += 1
        self.latency_sum += seconds
        self.latency_total += 1

    async def render(self) -> str:
        """Return every metric in Prometheus' text exposition format."""
        lines: list[str] = []

        def metric(name: str, kind: str, doc: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {doc}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

        metric(
            "skywatch_posts_total",
            "counter",
            "Posts processed (new or edited).",
            [("", self.posts)],
        )
        metric(
            "skywatch_flagged_total",
            "counter",
            "Posts flagged as current reports.",
            [("", self.flagged)],
        )
        metric("skywatch_incidents_total", "counter", "Incidents created.", [("", self.incidents)])
        metric(
            "skywatch_alert_messages_total",
            "counter",
            "Alert messages by outcome.",
            [(f'{{outcome="{k}"}}', v) for k, v in sorted(self.alerts.items())],
        )
        buckets = [
            (f'{{le="{bound:g}"}}', count)
            for bound, count in zip(LATENCY_BUCKETS, self.latency_counts, strict=True)
        ]
        buckets.append(('{le="+Inf"}', self.latency_total))
        lines.append("# HELP skywatch_delivery_seconds Seconds from an alert due to sent.")
        lines.append("# TYPE skywatch_delivery_seconds histogram")
        lines.extend(f"skywatch_delivery_seconds_bucket{le} {n}" for le, n in buckets)
        lines.append(f"skywatch_delivery_seconds_sum {self.latency_sum:g}")
        lines.append(f"skywatch_delivery_seconds_count {self.latency_total}")
        for name, read in sorted(self.gauges.items()):
            try:
                value = await read()
            except Exception:
                log.warning("metric %s could not be read", name, exc_info=True)
                continue
            metric(
                name,
                "gauge",
                name.removeprefix("skywatch_").replace("_", " ") + ".",
                [("", value)],
            )
        return "\n".join(lines) + "\n"  # fmt: skip


Check = Callable[[], Awaitable[dict[str, object]]]


class HealthServer:
    """Answer GET /healthz (JSON, 200 or 503) and GET /metrics on a local port."""

    def __init__(self, metrics: Metrics, check: Check, host: str, port: int) -> None:
        self.metrics = metrics
        self.check = check
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> HealthServer:
        return await self.open()

    async def open(self) -> HealthServer:
        """Start listening (OSError when the address is taken)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        sockets = self._server.sockets or ()
        if sockets:
            self.port = int(sockets[0].getsockname()[1])  # the port given, or the one chosen
        log.info("health and metrics on http://%s:%s/healthz", self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening (idempotent)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            method, path, *_ = head[:MAX_REQUEST].decode("latin-1").split(" ", 2) + ["", ""]
            status, kind, body = await self._answer(method, path.split("?", 1)[0])
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            status, kind, body = "400 Bad Request", "text/plain", "bad request\n"
        except Exception:
            log.exception("health endpoint failed")
            status, kind, body = "500 Internal Server Error", "text/plain", "error\n"
        payload = body.encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + payload
        )
        with suppress(ConnectionError):
            await writer.drain()
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()

    async def _answer(self, method: str, path: str) -> tuple[str, str, str]:
        if method != "GET":
            return "405 Method Not Allowed", "text/plain", "GET only\n"
        if path == "/healthz":
            report = await self.check()
            status = "200 OK" if report.get("status") == "ok" else "503 Service Unavailable"
            return status, "application/json", json.dumps(report) + "\n"
        if path == "/metrics":
            return "200 OK", "text/plain; version=0.0.4", await self.metrics.render()
        return "404 Not Found", "text/plain", "not found\n"
