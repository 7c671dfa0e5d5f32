"""Shared fixtures: an app on a temporary data directory, its client, and accounts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# As engine/__init__.py does for render processes, before anything imports numpy: one BLAS
# thread, or primitive's matrix products contend for the cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402
from flask import Flask
from flask.testing import FlaskClient

from webapp import create_app
from webapp.app import catalog


def _find_shared() -> Path:
    """The shared reference directory: $CROPSTACK_SHARED, else the first ``shared/``
    beside an ancestor of this checkout (works from /work/main and /work/wt/<name>)."""
    if os.environ.get("CROPSTACK_SHARED"):
        return Path(os.environ["CROPSTACK_SHARED"])
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared"
        if (candidate / "conformance").is_dir():
            return candidate
    return Path(__file__).resolve().parents[1].parent / "shared"


SHARED = _find_shared()
RECORDINGS = SHARED / "conformance" / "rokka-js-recordings"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """A fresh app with its own catalog and blobs under ``tmp_path``."""
    application = create_app({"data_dir": str(tmp_path / "data")})
    application.testing = True
    yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of ``app``."""
    return app.test_client()


class Caller:
    """Something holding an API key for ``org``: sends authenticated requests."""

    client: FlaskClient
    org: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        """Headers that authenticate as this caller."""
        return {"Api-Key": self.api_key}

    def request(self, method: str, path: str, **kwargs: Any):  # noqa: ANN201
        """A request authenticated as this caller."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.open(path, method=method, headers=headers, **kwargs)


class Account(Caller):
    """A user with an admin membership in ``org``, made by the catalog call behind both
    ``POST /users`` and ``cropstack users create`` (signup is off by default)."""

    def __init__(self, client: FlaskClient, org: str, email: str) -> None:
        with client.application.app_context():
            user = catalog().accounts.signup(email, org)
        self.client = client
        self.org = org
        self.user_id: str = user.id
        self.api_key = user.api_key


@pytest.fixture
def account(client: FlaskClient) -> Account:
    """An admin of organization ``acme``."""
    return Account(client, "acme", "admin@acme.example")


@pytest.fixture
def other_account(client: FlaskClient) -> Account:
    """An admin of organization ``globex``, to check isolation."""
    return Account(client, "globex", "admin@globex.example")


def load_recording(name: str) -> list[dict[str, Any]]:
    """The recorded rokka.js exchanges of one file in shared/conformance/rokka-js-recordings
    (``name`` with or without ``.json``): a list of ``{method, path, body, status, response}``."""
    file = name if name.endswith(".json") else f"{name}.json"
    return json.loads((RECORDINGS / file).read_text())
