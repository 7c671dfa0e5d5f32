"""Render counts of a real ``cropstack serve`` (gunicorn, two workers) reach
``GET /stats``: each worker counts in memory, writes every ``stats_flush_seconds`` and
once more when it stops (docs/stats.md)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.postgres import PostgresForTests
from tests.realserver import running_server
from tests.webapp.images import png
from tests.webapp.livehttp import call, call_json, upload
from tests.webapp.test_metrics import create_user


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def today_stats(base: str, key: str) -> dict[str, Any]:
    status, body = call_json(base, "GET", "/stats/acme", key)
    assert status == 200, body
    return {name: {p["timestamp"][:10]: p["value"] for p in s} for name, s in body.items()}


def render_all(base: str, urls: list[str]) -> int:
    """GET each URL (200 expected); the body bytes received."""
    received = 0
    for url in urls:
        status, _headers, body = call(base, "GET", url)
        assert status == 200, body[:200]
        received += len(body)
    return received


@pytest.mark.server
def test_renders_through_two_workers_are_counted_once_each(tmp_path: Path) -> None:
    key = create_user(tmp_path / "data", "acme")
    env = {"CROPSTACK_STATS_FLUSH_SECONDS": "0.5"}
    with running_server(tmp_path, env=env, workers=2) as base:
        data = png(64, 48, seed=11)
        image = upload(base, key, "acme", data)
        urls = [f"/acme/dynamic/resize-width-{w}/{image}.png" for w in (8, 16, 24)] * 4
        sent = render_all(base, urls)
        deadline = time.monotonic() + 30
        seen = today_stats(base, key)
        while seen["number_of_renders"].get(today(), 0) < len(urls):
            assert time.monotonic() < deadline, seen
            time.sleep(0.2)
            seen = today_stats(base, key)
        time.sleep(1.5)  # more flushes: nothing is written twice
        seen = today_stats(base, key)
        assert seen["number_of_renders"] == {today(): 12}
        # one miss per URL; the workers share the disk cache, so the other 9 are hits
        assert seen["number_of_renders_from_cache"] == {today(): 9}
        assert seen["bytes_downloaded"] == {today(): sent}
        assert seen["space_in_bytes"] == {today(): len(data)}
        assert seen["number_of_files"] == {today(): 1}


@pytest.mark.server
def test_a_stopping_server_writes_its_counts(tmp_path: Path) -> None:
    key = create_user(tmp_path / "data", "acme")
    env = {"CROPSTACK_STATS_FLUSH_SECONDS": "3600"}  # no periodic flush in this test
    with running_server(tmp_path, env=env, workers=2) as base:
        image = upload(base, key, "acme", png(40, 30, seed=12))
        sent = render_all(base, [f"/acme/dynamic/resize-width-10/{image}.jpg"] * 3)
        assert today_stats(base, key)["number_of_renders"] == {}
    # stopped (SIGTERM: gunicorn stops its workers gracefully); started again
    with running_server(tmp_path, env=env, workers=1) as base:
        seen = today_stats(base, key)
        assert seen["number_of_renders"] == {today(): 3}
        assert seen["bytes_downloaded"] == {today(): sent}


@pytest.fixture
def database(postgres: PostgresForTests):  # noqa: ANN201
    url = postgres.new_database()
    yield url
    postgres.drop(url)


@pytest.mark.server
def test_two_nodes_on_one_postgresql_database_add_up(tmp_path: Path, database: str) -> None:
    """Two servers (two workers each) share one catalog and one blob directory, as two
    nodes behind a load balancer: each adds its own counts to the same day's row."""
    env = {
        "CROPSTACK_DATABASE_URL": database,
        "CROPSTACK_BLOB_STORE": str(tmp_path / "blobs"),
        "CROPSTACK_STATS_FLUSH_SECONDS": "0.5",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        running_server(tmp_path / "a", "--signup", env=env) as node_a,
        running_server(tmp_path / "b", env=env) as node_b,
    ):
        signup = b'{"email": "ops@acme.example", "organization": "acme"}'
        status, user = call_json(node_a, "POST", "/users", body=signup)
        assert status == 200, user
        key = user["api_key"]
        data = png(48, 32, seed=13)
        image = upload(node_a, key, "acme", data)
        urls = [f"/acme/dynamic/resize-width-{w}/{image}.png" for w in (8, 12)]
        sent = render_all(node_a, urls * 2) + render_all(node_b, urls * 3)
        deadline = time.monotonic() + 30
        seen = today_stats(node_b, key)
        while seen["number_of_renders"].get(today(), 0) < 10:
            assert time.monotonic() < deadline, seen
            time.sleep(0.2)
            seen = today_stats(node_b, key)
        time.sleep(1.5)
        seen = today_stats(node_a, key)
        assert seen["number_of_renders"] == {today(): 10}
        assert seen["bytes_downloaded"] == {today(): sent}
        assert seen["space_in_bytes"] == {today(): len(data)}
