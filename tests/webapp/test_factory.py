"""The app factory, health check and the error shape."""

from __future__ import annotations

import pytest

from webapp import create_app
from webapp.settings import load_settings


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == {"status": "ok"}


def test_unknown_route_is_json_404(client):
    response = client.get("/sourceimages")
    assert response.status_code in (404, 405)
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json()["error"]["code"] == response.status_code


def test_settings_reject_unknown_and_bad_values(tmp_path):
    with pytest.raises(ValueError, match="unknown settings"):
        load_settings({"nope": 1})
    with pytest.raises(ValueError, match="max_upload_bytes"):
        load_settings({"max_upload_bytes": "lots"})
    assert load_settings({}, environ={"CROPSTACK_SIGNUP": "false"}).signup is False


def test_factory_creates_data_dir(tmp_path):
    create_app({"data_dir": str(tmp_path / "nested" / "data")})
    assert (tmp_path / "nested" / "data" / "catalog.db").exists()
