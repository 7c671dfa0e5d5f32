"""``GET /metrics`` and the JSON access log of a real ``cropstack serve`` with 2 workers.

The exposition is parsed with prometheus-client's own parser; counts are compared with
the requests just made, which the access log shows spread over both workers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.realserver import REPO, running_server
from tests.webapp.images import png
from tests.webapp.livehttp import call, call_json, upload


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition: (name, labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def log_lines(path: Path) -> list[dict]:
    """The JSON lines of a server log (other lines are gunicorn's own)."""
    lines = []
    for raw in path.read_text().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def create_user(data_dir: Path, org: str) -> str:
    """A user administering ``org``, made with ``cropstack users create``; its API key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROPSTACK_")}
    result = subprocess.run(
        [sys.executable, "-m", "webapp.cli", "users", "create", "--email", f"ops@{org}.example",
         "--organization", org, "--data-dir", str(data_dir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["api_key"]


@pytest.mark.server
def test_metrics_and_access_log_across_two_workers(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = create_user(data_dir, "acme")
    signing_key = "s3cr3t-signing-key-value-0123456789"
    env = {"CROPSTACK_RESTORE_DAYS": "7"}
    with running_server(tmp_path, env=env, workers=2) as base:
        image = upload(base, key, "acme", png(64, 48, seed=3))
        render = f"/acme/dynamic/resize-width-16/{image}.png"
        assert call(base, "GET", render)[0] == 200  # miss: rendered
        assert call(base, "GET", render)[0] == 200  # hit: from the disk cache
        # Secrets a client may send where a log could pick them up.
        status, _body = call_json(
            base, "GET", f"/sourceimages/acme?api_key={key}", key,
            headers={"Authorization": f"Bearer {signing_key}"},
        )  # fmt: skip
        assert status == 400  # unknown search parameter
        signed = call(base, "GET", render + "?sig=abcdef0123456789&v=%7B%7D")
        assert signed[0] < 500
        status, keys = call_json(base, "POST", "/organizations/acme/signing_keys", key)
        assert status in (200, 201), keys

        # /operations until the log shows both workers answering it.
        made = 0
        for _round in range(20):
            with ThreadPoolExecutor(max_workers=8) as pool:
                statuses = list(pool.map(lambda _: call(base, "GET", "/operations")[0], range(16)))
            assert statuses == [200] * 16
            made += 16
            pids = {
                line["pid"]
                for line in log_lines(tmp_path / "server.log")
                if line.get("route") == "/operations"
            }
            if len(pids) == 2:
                break
        assert len(pids) == 2, "one worker took every request"

        status, headers, raw = call(base, "GET", "/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain")
        found = samples(raw.decode())
        status, _h, again = call(base, "GET", "/metrics/")
        assert status == 200

    requests = "cropstack_http_requests_total"
    assert value(found, requests, method="GET", route="/operations", status="200") == made
    assert value(found, requests, method="POST", route="/sourceimages/<org>", status="200") == 1
    assert value(found, requests, method="GET", route="render", status="200") >= 2
    assert value(found, "cropstack_render_cache_requests_total", result="miss") == 1
    assert value(found, "cropstack_render_cache_requests_total", result="hit") >= 1
    assert value(found, "cropstack_render_cache_bytes") > 0
    assert value(found, "cropstack_jobs_seconds_count", kind="render", lane="cheap") == 1
    assert value(found, "cropstack_jobs_seconds_count", kind="probe", lane="cheap") == 1
    assert value(found, "cropstack_queue_wait_seconds_count", queue="cheap") == 2
    assert value(found, "cropstack_queue_wait_seconds_count", queue="upload") == 1
    duration = "cropstack_http_request_duration_seconds_count"
    assert value(found, duration, method="GET", route="/operations") == made

    lines = log_lines(tmp_path / "server.log")
    start = [line for line in lines if line.get("event") == "start"]
    assert len(start) == 1
    assert start[0]["data_dir"] == str(data_dir.resolve())
    assert start[0]["workers"] == 2 and start[0]["signup"] == "off"
    assert start[0]["catalog"].endswith(str(data_dir / "catalog.db"))
    assert start[0]["non_default_settings"]["restore_days"] == 7
    assert "data_dir" in start[0]["non_default_settings"]

    served = [line for line in lines if line.get("event") == "request"]
    ops = [line for line in served if line["route"] == "/operations"]
    assert len(ops) == made  # one line per request
    for line in ops:
        assert line["method"] == "GET" and line["status"] == 200 and line["bytes"] > 100
        assert line["duration_ms"] >= 0 and line["org"] is None
    upload_line = next(line for line in served if line["method"] == "POST")
    assert upload_line["route"] == "/sourceimages/<org>" and upload_line["org"] == "acme"
    renders = [line for line in served if line["route"] == "render"]
    assert len(renders) == 3 and {line["org"] for line in renders} == {"acme"}
    text = (tmp_path / "server.log").read_text()
    created = keys if isinstance(keys, dict) else keys[0]
    for secret in (key, signing_key, "abcdef0123456789", "Bearer", str(created)):
        assert secret not in text
    for line in served:
        assert set(line) == {
            "time", "event", "method", "route", "status", "duration_ms", "bytes", "org",
            "remote", "pid",
        }  # fmt: skip
        logged = datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
        assert abs((datetime.now(UTC) - logged).total_seconds()) < 600


@pytest.mark.server
def test_access_log_can_be_turned_off(tmp_path: Path) -> None:
    with running_server(tmp_path, "--no-access-log", workers=1) as base:
        assert call(base, "GET", "/operations")[0] == 200
    lines = log_lines(tmp_path / "server.log")
    assert [line["event"] for line in lines] == ["start"]
    assert lines[0]["non_default_settings"]["access_log"] is False


def test_metrics_setting_off_answers_404(tmp_path: Path) -> None:
    from webapp import create_app

    app = create_app({"data_dir": str(tmp_path / "data"), "metrics": False})
    answer = app.test_client().get("/metrics")
    assert answer.status_code == 404
    assert answer.get_json()["error"]["code"] == 404


def test_storage_faults_are_counted(client) -> None:
    import errno
    import sqlite3

    from webapp.errors import storage_fault

    def count(part: str, kind: str) -> float:
        found = samples(client.get("/metrics").get_data(as_text=True))
        return value(found, "cropstack_storage_errors_total", part=part, kind=kind)

    full, io = count("store", "full"), count("catalog", "io")
    assert storage_fault(OSError(errno.ENOSPC, "No space left on device")).status == 507
    disk_io = sqlite3.OperationalError("disk I/O error")
    disk_io.sqlite_errorcode = 10  # SQLITE_IOERR
    assert storage_fault(disk_io).status == 503
    assert storage_fault(ValueError("not storage")) is None
    assert count("store", "full") == full + 1
    assert count("catalog", "io") == io + 1


def test_access_log_names_the_forwarded_client_behind_a_trusted_proxy(tmp_path: Path) -> None:
    import logging

    from webapp import create_app

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Keep()
    logger = logging.getLogger("cropstack.access")
    logger.addHandler(handler)
    try:
        for count, expected in ((1, "203.0.113.9"), (0, "127.0.0.1")):
            app = create_app({"data_dir": str(tmp_path / "data"), "proxy_count": count})
            client = app.test_client()
            forwarded = {"X-Forwarded-For": "203.0.113.9", "Api-Key": "k" * 64}
            assert client.get("/user", headers=forwarded).status_code == 403
            line = json.loads(lines[-1])
            assert line["remote"] == expected and line["route"] == "/user"
            assert line["status"] == 403 and "k" * 64 not in lines[-1]
    finally:
        logger.removeHandler(handler)
