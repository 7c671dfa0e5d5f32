"""The upload, source image and render suites again, on PostgreSQL and S3 together.

Every test of tests/webapp/test_sourceimages.py and tests/webapp/test_render.py runs
here unchanged, collected a second time under this module, where the catalog is the
session's PostgreSQL server (tests/conftest.py POSTGRESQL_ONLY) and ``CROPSTACK_BLOB_STORE``
points at a fresh prefix on the session's S3 server (moto_server on loopback): the
deployment past one machine. The whole suite runs on S3 with
``CROPSTACK_TEST_BLOB_STORE=s3`` and on PostgreSQL with ``CROPSTACK_TEST_DATABASE``.
"""

from __future__ import annotations

import pytest

from tests.webapp.test_render import *  # noqa: F403
from tests.webapp.test_sourceimages import *  # noqa: F403


@pytest.fixture(autouse=True)
def _originals_on_s3(on_s3: str) -> None:
    """Every app of these tests stores its originals on S3."""


def test_this_module_stores_originals_on_s3(app, acme):  # noqa: ANN001
    """The premise: uploads here land in the S3 store."""
    from tests.webapp.images import multipart, png

    assert app.extensions["cropstack.blobs"].location.startswith("s3://")
    from webapp.catalog.postgres import PostgresBackend

    assert isinstance(app.extensions["cropstack.catalog"], PostgresBackend)
    upload = acme.request("POST", "/sourceimages/acme", data=multipart(png(seed=9)))
    assert upload.status_code == 200
    assert len(list(app.extensions["cropstack.blobs"].list())) == 1
