"""Shared fixtures: an app on a temporary data directory, its client, and accounts."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# As engine/__init__.py does for render processes, before anything imports numpy: one BLAS
# thread, or primitive's matrix products contend for the cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402
from flask import Flask
from flask.testing import FlaskClient

from tests.postgres import PostgresForTests
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


#: Suites that run on both catalog backends in the default run (their app-based tests
#: are parametrized ``[sqlite]``/``[postgresql]``); every other suite runs on SQLite.
#: ``CROPSTACK_TEST_DATABASE=postgresql`` (or ``sqlite``) runs every app on that one.
BOTH_BACKENDS = frozenset(
    {
        "test_accounts",
        "test_albums",
        "test_aliases",
        "test_catalog_contract",
        "test_catalog_nodes",
        "test_metadata",
        "test_remote_render",
        "test_search",
        "test_search_live",
        "test_sourceimages",
        "test_stacks_api",
        "test_stats",
        "test_usage_contract",
        "test_user_metadata",
    }
)
BACKENDS = ("sqlite", "postgresql")
#: Suites that run on PostgreSQL only: test_on_s3 repeats the upload and render suites
#: on the deployment past one machine, PostgreSQL catalog and S3 originals together.
POSTGRESQL_ONLY = frozenset({"test_on_s3"})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the suites of ``BOTH_BACKENDS`` on SQLite and on PostgreSQL."""
    if "catalog_backend" not in metafunc.fixturenames:
        return
    forced = os.environ.get("CROPSTACK_TEST_DATABASE", "").strip()
    if forced:
        if forced not in BACKENDS:
            raise pytest.UsageError(f"CROPSTACK_TEST_DATABASE must be one of {BACKENDS}")
        chosen: tuple[str, ...] = (forced,)
    elif metafunc.definition.get_closest_marker("sqlite_only"):
        chosen = ("sqlite",)
    elif metafunc.module.__name__.rsplit(".", 1)[-1] in BOTH_BACKENDS:
        chosen = BACKENDS
    elif metafunc.module.__name__.rsplit(".", 1)[-1] in POSTGRESQL_ONLY:
        chosen = ("postgresql",)
    else:
        return  # the fixture's default: SQLite, test ids unchanged
    metafunc.parametrize("catalog_backend", chosen, indirect=True, scope="module")


@pytest.fixture(scope="module")
def catalog_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``: the catalog the test's app uses."""
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresForTests]:
    """One real PostgreSQL server for the session (tests/postgres.py).

    Its data directory is not under pytest's temporary root: every pytest run makes that
    root private to root again (mode 0700), which would lock out the server's own user
    while another test run on the machine starts."""
    root = Path(tempfile.mkdtemp(prefix="cropstack-pg-"))
    server = PostgresForTests(root / "data")
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible server (moto's standalone server) on loopback for the session,
    with bucket ``tests.s3server.BUCKET``; yields its endpoint URL.

    The standard AWS variables point at it for the rest of the session (test credentials),
    so boto3 in this process and in ``cropstack serve`` children finds it.
    """
    import boto3

    from tests.s3server import BUCKET, moto_server

    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with moto_server(log) as endpoint, pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", "cropstack-test")
        env.setenv("AWS_SECRET_ACCESS_KEY", "cropstack-test")
        env.setenv("AWS_REGION", "us-east-1")
        boto3.session.Session().client("s3").create_bucket(Bucket=BUCKET)
        yield endpoint


@pytest.fixture
def s3_location(s3_server: str) -> str:
    """A fresh ``s3://bucket/prefix`` on the session's S3 server (a new prefix per test)."""
    from tests.s3server import BUCKET

    return f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def on_s3(s3_location: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every app this test creates (and every server it starts) keeps its originals on
    the S3 server: ``CROPSTACK_BLOB_STORE`` is set; the location."""
    monkeypatch.setenv("CROPSTACK_BLOB_STORE", s3_location)
    return s3_location


@pytest.fixture
def on_local_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Originals in the data dir, also under ``CROPSTACK_TEST_BLOB_STORE=s3``: for tests
    about the local disk itself (request it before ``app``)."""
    monkeypatch.delenv("CROPSTACK_BLOB_STORE", raising=False)


@pytest.fixture(autouse=True)
def _blob_store_under_test(request: pytest.FixtureRequest) -> None:
    """``CROPSTACK_TEST_BLOB_STORE=s3`` runs every test with originals on S3."""
    if os.environ.get("CROPSTACK_TEST_BLOB_STORE") == "s3":
        request.getfixturevalue("on_s3")


@pytest.fixture
def database_url(catalog_backend: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """The ``database_url`` setting of this test's app: empty (SQLite in the data
    directory) or the session's PostgreSQL database, emptied for this test."""
    if catalog_backend == "sqlite":
        yield ""
        return
    server: PostgresForTests = request.getfixturevalue("postgres")
    yield server.clean_database()


def close_app(application: Flask) -> None:
    """Write the app's last render counts, then release what it holds of its catalog (a
    PostgreSQL pool)."""
    application.extensions["cropstack.usage"].close()
    application.extensions["cropstack.catalog"].close()


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    """A fresh app with its own catalog and blobs under ``tmp_path``."""
    application = create_app({"data_dir": str(tmp_path / "data"), "database_url": database_url})
    application.testing = True
    yield application
    close_app(application)


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
