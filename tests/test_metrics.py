"""Metrics' text format, and /healthz and /metrics over a real socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from bot.app import _health_server
from bot.config import load_config
from bot.metrics import HealthServer, Metrics
from storage.db import Database


async def test_metrics_render_in_prometheus_text_format() -> None:
    metrics = Metrics(posts=12, flagged=3, incidents=1)
    metrics.alert("sent")
    metrics.alert("sent")
    metrics.alert("error_RetryAfter")
    metrics.latency(0.2)
    metrics.latency(7.0)

    async def outbox() -> float:
        return 5

    async def broken() -> float:
        raise RuntimeError("database closed")

    metrics.gauges["skywatch_outbox_messages"] = outbox
    metrics.gauges["skywatch_broken"] = broken
    text = await metrics.render()
    lines = text.splitlines()
    assert "# TYPE skywatch_posts_total counter" in lines
    assert "skywatch_posts_total 12" in lines and "skywatch_flagged_total 3" in lines
    assert 'skywatch_alert_messages_total{outcome="sent"} 2' in lines
    assert 'skywatch_alert_messages_total{outcome="error_RetryAfter"} 1' in lines
    assert 'skywatch_delivery_seconds_bucket{le="0.25"} 1' in lines
    assert 'skywatch_delivery_seconds_bucket{le="10"} 2' in lines
    assert 'skywatch_delivery_seconds_bucket{le="+Inf"} 2' in lines
    assert "skywatch_delivery_seconds_count 2" in lines
    assert "skywatch_outbox_messages 5" in lines
    assert not any(line.startswith("skywatch_broken") for line in lines)  # skipped, logged
    assert text.endswith("\n")


async def test_health_endpoint_answers_and_refuses_what_it_should() -> None:
    healthy = {"status": "ok", "database": "ok", "watcher": "listening"}
    report = dict(healthy)

    async def check() -> dict[str, object]:
        return report

    async with (
        HealthServer(Metrics(posts=1), check, "127.0.0.1", 0) as server,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        ok = await client.get("/healthz")
        assert ok.status_code == 200 and ok.json() == healthy
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and "skywatch_posts_total 1" in metrics.text
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert (await client.get("/nope")).status_code == 404
        assert (await client.post("/healthz")).status_code == 405
        report.update(status="error", database="unavailable: OperationalError")
        down = await client.get("/healthz")
        assert down.status_code == 503 and down.json()["database"].startswith("unavailable")
        # A client that never finishes its request does not hold the server.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\n")  # and nothing more
        assert (await client.get("/metrics")).status_code == 200
        writer.close()
        await writer.wait_closed()
        del reader


async def test_a_taken_port_leaves_the_service_running_without_the_endpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = load_config(
            {"HEALTH_PORT": str(port), "DATA_DIR": str(tmp_path)},
            resolve_region=lambda name: name,
            require_watch=False,
        )
        async with (
            Database(tmp_path / "h.db") as db,
            _health_server(config, Metrics(), db, None) as server,  # type: ignore[arg-type]
        ):
            assert server is None
    assert f"cannot listen on 127.0.0.1:{port}" in caplog.text
