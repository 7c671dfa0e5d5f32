"""``GET /openapi.json``: a valid OpenAPI 3.1 document of every management route, kept
true by schemathesis driving a live server from it (no 5xx; statuses, content types and
bodies as the document says)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from openapi_spec_validator import validate

from tests.realserver import running_server
from tests.webapp.images import png
from tests.webapp.livehttp import call_json, upload
from tests.webapp.test_metrics import create_user

# What OpenAPI cannot or need not say: rokka's COPY method (its POST twin is described),
# and HEAD/OPTIONS, which Flask adds to every GET route.
UNDESCRIBED_METHODS = {"COPY", "HEAD", "OPTIONS"}


def test_document_is_valid_openapi_31(client) -> None:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    document = answer.get_json()
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any structural error
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]


def test_every_route_is_described_and_nothing_else(app: Flask, client) -> None:
    document = client.get("/openapi.json").get_json()
    described = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
    }
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "render.render") or rule.endpoint.startswith(
            ("iiif.", "albums.", "console.")
        ):
            continue  # the render host's protocols and the console's files, not the JSON API
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        served |= {(path, m) for m in rule.methods - UNDESCRIBED_METHODS}
    assert described == served
    for path, item in document["paths"].items():
        for method, operation in item.items():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"{(\w+)}", path)), (method, path)
            assert "default" in operation["responses"], (method, path)


@pytest.mark.server
@pytest.mark.slow
def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_document(tmp_path: Path) -> None:
    key = create_user(tmp_path / "data", "acme")
    with running_server(tmp_path, workers=1) as base:
        image = upload(base, key, "acme", png(40, 30, seed=9))
        status, member = call_json(
            base, "POST", "/organizations/acme/memberships", key, body=b'{"roles": ["read"]}'
        )
        assert status == 201, member
        # Fixed values for the path parameters that name things, so generated requests
        # reach real objects; another user's id, so the run cannot demote its own key.
        config = tmp_path / "schemathesis.toml"
        config.write_text(
            "[parameters]\n"
            '"path.org" = "acme"\n'
            f'"path.ref" = "{image}"\n'
            f'"path.user_id" = "{member["user_id"]}"\n'
            "[[operations]]\n"
            'include-path-regex = "^/organizations/[{]name[}]"\n'
            'parameters = { "path.name" = "acme" }\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CROPSTACK_")}
        result = subprocess.run(
            [
                sys.executable, "-m", "schemathesis.cli", "--no-color", "--config-file",
                str(config), "run", base + "/openapi.json", "-H", f"Api-Key: {key}",
                "--checks", "not_a_server_error,status_code_conformance,"
                "content_type_conformance,response_schema_conformance",
                "--phases", "examples,coverage,fuzzing", "--max-examples", "8", "--seed", "1",
                "--workers", "1", "--request-timeout", "20",
                "--generation-with-security-parameters", "false",
            ],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        assert re.search(r"\d+ generated, \d+ passed", output), output[-3000:]
        tested = re.search(r"Tested: (\d+)", output)
        assert tested and int(tested.group(1)) >= 50, output[-3000:]
    log = (tmp_path / "server.log").read_text()
    served = [json.loads(line) for line in log.splitlines() if line.startswith('{"time"')]
    assert len(served) > 500  # the run really sent requests
    assert not [line for line in served if line["status"] >= 500]
