"""Search benchmark over a generated catalog of 100,000 images (docs/search.md).

Run: ``/work/main/.venv/bin/python -m pytest benchmarks/test_search_bench.py -q -s``
(not part of the default test run). Set ``SEARCH_BENCH_IMAGES`` for another size and
``SEARCH_BENCH_DATABASES`` (``sqlite,postgresql``, the default) for the catalogs to run on.

The built SQLite catalog is kept in ``SEARCH_BENCH_CACHE`` (default: a directory in the
system's temporary directory; empty: no cache) under a key of everything that shapes it
(image count, this module's generator, the migrations' SQL); each run copies it, so runs
never change it. ``python -m benchmarks.test_search_bench`` builds it without measuring.
``SEARCH_BENCH_LOCK=<file>``: take an exclusive ``flock`` on it for each catalog's
measurements only (after its catalog is built), so that a shared machine's benchmark
lock is not held while building.

The catalog is filled directly through the catalog layer's tables (SQLite: one bulk
INSERT per batch, the search index triggers run as for any write; PostgreSQL: COPY of
the rows and of the index rows ``index_rows`` computes, as its writes do), then every
query goes through the Flask app exactly as a client's would: exact, prefix, range,
text, sorted, faceted queries and deep cursor paging. Prints the mean and median per query and
catalog, the PostgreSQL/SQLite ratio and how many queries are within the goal (15 ms:
under 20 ms with margin). The PostgreSQL server is the tests' (tests/postgres.py:
pgserver's PostgreSQL 16 on a Unix socket, default settings apart from fsync off).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import platform
import random
import shutil
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from webapp.httpworker import settle_heap

IMAGES = int(os.environ.get("SEARCH_BENCH_IMAGES", "100000"))
DATABASES = os.environ.get("SEARCH_BENCH_DATABASES", "sqlite,postgresql").split(",")
#: The goal (issue 14) is under 20 ms with margin: 15 ms.
GOAL_MS = 15.0
RESULTS: dict[str, dict[str, float]] = {}
#: Medians beside the means: on a loaded machine a few slow rounds move the mean.
MEDIANS: dict[str, dict[str, float]] = {}
WORDS = (
    "mountain lake city night snow beach forest river bridge tower street market portrait "
    "sunset harbour garden winter summer autumn spring festival concert museum station"
).split()
LABELS = WORDS[:12]
PHOTOGRAPHERS = [f"photographer_{i}" for i in range(200)]


def _metadata(rng: random.Random, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A realistic mix: most images have a product id and photographer, some labels and
    a caption, fewer have dates, prices and a subject area."""
    user: dict[str, Any] = {}
    if rng.random() < 0.9:
        user["product_id"] = f"P{rng.randrange(30_000):05d}"
    if rng.random() < 0.8:
        user["photographer"] = rng.choice(PHOTOGRAPHERS)
    if rng.random() < 0.7:
        user["int:stock"] = rng.randrange(0, 100_000)
    if rng.random() < 0.5:
        user["double:price"] = round(rng.uniform(1, 500), 2)
    if rng.random() < 0.6:
        user["array:labels"] = rng.sample(LABELS, rng.randrange(1, 4))
    if rng.random() < 0.5:
        user["text:caption"] = " ".join(rng.choices(WORDS, k=rng.randrange(3, 10)))
    if rng.random() < 0.4:
        day = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(5_000_000))
        user["date:shot"] = day.strftime("%Y-%m-%dT%H:%M:%SZ")
    dynamic: dict[str, Any] = {}
    if rng.random() < 0.3:
        dynamic["subject_area"] = {
            "width": rng.randrange(1, 2000),
            "height": rng.randrange(1, 2000),
            "x": rng.randrange(0, 3000),
            "y": rng.randrange(0, 3000),
        }
    if rng.random() < 0.1:
        dynamic["version"] = {"text": f"v{rng.randrange(20)}"}
    return user, dynamic


def build_catalog(data_dir: Path, database_url: str = "") -> tuple[Any, dict[str, str]]:
    """An app whose organization ``bench`` holds ``IMAGES`` images; (client, headers)."""
    from webapp import create_app

    app = create_app({"data_dir": str(data_dir), "signup": True, "database_url": database_url})
    client = app.test_client()
    user = client.post("/users", data=json.dumps({"email": "b@x.example", "organization": "bench"}))
    headers = {"Api-Key": user.get_json()["api_key"]}
    catalog = app.extensions["cropstack.catalog"].open()
    org_id = catalog.accounts.org_by_name("bench").id
    db = catalog._db  # SQLite: bulk INSERTs straight into the table fire the index triggers
    rng = random.Random(42)
    start = datetime(2019, 1, 1, tzinfo=UTC)
    columns = (
        "organization_id, hash, short_hash, binary_hash, blob_key, name, format, mimetype, "
        "size, width, height, user_metadata, dynamic_metadata, created"
    )
    batch: list[tuple[Any, ...]] = []
    for i in range(IMAGES):
        image_hash = hashlib.sha1(f"image {i}".encode()).hexdigest()
        user_meta, dynamic = _metadata(rng, i)
        fmt = rng.choice(["jpg", "jpg", "jpg", "png", "webp"])
        name = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{i}.{fmt}"
        created = (start + timedelta(seconds=i * 300 + rng.randrange(300))).isoformat()
        batch.append(
            (
                org_id, image_hash, image_hash[:10], hashlib.sha1(image_hash.encode()).hexdigest(),
                image_hash, name, fmt, f"image/{'jpeg' if fmt == 'jpg' else fmt}",
                rng.randrange(10_000, 5_000_000), rng.randrange(100, 6000),
                rng.randrange(100, 6000), json.dumps(user_meta), json.dumps(dynamic), created,
            )
        )  # fmt: skip
        if database_url:
            continue
        if len(batch) == 5000 or i == IMAGES - 1:
            with catalog.unit_of_work():
                db.conn.executemany(
                    f"INSERT INTO sourceimages ({columns}) VALUES ({', '.join('?' * 14)})", batch
                )
            batch = []
    if database_url:
        import psycopg

        _copy_into_postgresql(db, columns, batch)
        # The app's pooled connections closed first: a transaction of theirs still open
        # keeps VACUUM from marking any page all-visible.
        catalog.close()
        app.extensions["cropstack.catalog"].close()
        # What autovacuum does soon after a bulk load: statistics and the visibility map
        # (without it, index-only scans read every heap page).
        # VACUUM marks no page while a transaction older than the load is open anywhere
        # in the database (seen: 0 of 6,032 pages on the first pass): it is repeated
        # until nearly every page of sourceimages is marked, as autovacuum's next passes
        # would.
        with psycopg.connect(database_url, autocommit=True) as conn:
            passes = 0
            while passes < 10:
                passes += 1
                conn.execute("VACUUM ANALYZE")
                pages, visible = conn.execute(
                    "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'sourceimages'"
                ).fetchone()
                if visible >= 0.95 * pages:
                    break
                time.sleep(2)
        print(f"\nsourceimages: {visible} of {pages} pages all-visible after {passes} VACUUMs")
        return client, headers
    with catalog.unit_of_work():
        db.execute("ANALYZE")
    catalog.close()
    return client, headers


def _copy_into_postgresql(db: Any, columns: str, rows: list[tuple[Any, ...]]) -> None:
    """COPY the image rows and their search index rows (as ``index_image`` writes them);
    the word index of live images (migration 5) is filled by its trigger as they arrive."""
    from webapp.catalog.postgres import index_rows

    with db.transaction(), db.conn.cursor() as cursor:
        # The facet-count trigger updates the same few count rows once per image: fine for
        # one image per transaction, quadratic within one bulk transaction. Off during the
        # COPY, the counts are then made by one GROUP BY over the same function.
        cursor.execute("ALTER TABLE sourceimages DISABLE TRIGGER sourceimages_facet_counts")
        with cursor.copy(f"COPY sourceimages ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            "INSERT INTO sourceimage_facet_counts (organization_id, facet, value, count) "
            "SELECT s.organization_id, v.facet, v.value, count(*) FROM sourceimages AS s, "
            "cropstack_facet_values(s.format, s.mimetype, s.user_metadata) AS v "
            "WHERE s.deleted_at IS NULL GROUP BY 1, 2, 3"
        )
        cursor.execute("ALTER TABLE sourceimages ENABLE TRIGGER sourceimages_facet_counts")
        with cursor.copy(
            "COPY sourceimage_values (organization_id, hash, source, field, type, value_text, "
            "value_num) FROM STDIN"
        ) as copy:
            for row in rows:
                org_id, image_hash, name = row[0], row[1], row[5]
                user, dynamic = json.loads(row[11]), json.loads(row[12])
                for values in index_rows(name, user, dynamic, {}):
                    copy.write_row((org_id, image_hash, *values))


CACHE = os.environ.get(
    "SEARCH_BENCH_CACHE", os.path.join(tempfile.gettempdir(), "cropstack-search-bench")
)


def _cache_key() -> str:
    """What shapes the SQLite catalog: the image count, the generator and the schema."""
    from webapp.catalog.migrations import MIGRATIONS

    parts = [str(IMAGES), inspect.getsource(_metadata), inspect.getsource(build_catalog)]
    parts += [f"{m.version} {m.script}" for m in MIGRATIONS["sqlite"]]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def cached_sqlite_catalog(data_dir: Path) -> tuple[Any, dict[str, str]]:
    """``build_catalog(data_dir)``, from a copy of the cached catalog when there is one
    (else built, then cached: written beside the entry and renamed into place, so an
    interrupted or concurrent build never leaves a partial one)."""
    if not CACHE:
        return build_catalog(data_dir)
    entry = Path(CACHE) / f"sqlite-{_cache_key()}"
    if not (entry / "catalog.db").exists():
        client, headers = build_catalog(data_dir)
        client.application.extensions["cropstack.catalog"].close()
        staging = Path(tempfile.mkdtemp(prefix="building-", dir=_made(Path(CACHE))))
        # The backup API copies a consistent snapshot, WAL included, into one file.
        src, dst = sqlite3.connect(data_dir / "catalog.db"), sqlite3.connect(staging / "catalog.db")
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        (staging / "headers.json").write_text(json.dumps(headers))
        try:
            staging.rename(entry)
        except OSError:  # another build got there first
            shutil.rmtree(staging, ignore_errors=True)
        return client, headers
    from webapp import create_app

    _made(data_dir)
    shutil.copyfile(entry / "catalog.db", data_dir / "catalog.db")
    app = create_app({"data_dir": str(data_dir), "signup": True})
    return app.test_client(), json.loads((entry / "headers.json").read_text())


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def report():
    load_before = os.getloadavg()
    yield
    names = list(RESULTS.get(DATABASES[0], {}))
    ratio = len(DATABASES) == 2
    print(
        f"\nmachine: {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}; load average {load_before[0]:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end; {IMAGES} images"
    )
    print(
        f"{'query (mean / median ms)':<34} "
        + " ".join(f"{d:>20}" for d in DATABASES)
        + (f" {DATABASES[1] + '/' + DATABASES[0]:>20}" if ratio else "")
    )
    for name in names:
        means = [RESULTS.get(d, {}).get(name) for d in DATABASES]
        medians = [MEDIANS.get(d, {}).get(name) or 0.0 for d in DATABASES]
        line = f"{name:<34} " + " ".join(
            f"{m * 1000:11.2f} / {md * 1000:6.2f}" if m else f"{'':>20}"
            for m, md in zip(means, medians, strict=True)
        )
        if ratio and means[0] and means[1]:
            line += f" {means[1] / means[0]:20.2f}"
        print(line)
    for database in DATABASES:
        means = RESULTS.get(database, {})
        if means:
            worst = max(means, key=means.__getitem__)
            within = sum(m * 1000 <= GOAL_MS for m in means.values())
            print(
                f"{database}: {within}/{len(means)} queries within {GOAL_MS:.0f} ms; slowest "
                f"{worst} {means[worst] * 1000:.2f} ms"
            )


@pytest.fixture(scope="module", params=DATABASES)
def bench_client(request, tmp_path_factory, report):
    url = ""
    if request.param == "postgresql":
        import tempfile

        from tests.postgres import PostgresForTests

        root = Path(tempfile.mkdtemp(prefix="cropstack-bench-pg-"))
        server = PostgresForTests(root / "data")
        request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
        request.addfinalizer(server.stop)
        url = server.new_database()
    started = time.perf_counter()
    data_dir = tmp_path_factory.mktemp("search-bench") / "data"
    if url:
        client, headers = build_catalog(data_dir, url)
    else:
        client, headers = cached_sqlite_catalog(data_dir)
    print(f"\nready: {IMAGES} images on {request.param} in {time.perf_counter() - started:.1f} s")
    # As a server's worker does once set up: without it a full collection walks the whole
    # test process (pytest, the build's leftovers; 30-65 ms each) in whichever query's
    # round it falls (``name_text``'s 78 ms round in the sixth session).
    settle_heap()
    lock = os.environ.get("SEARCH_BENCH_LOCK")
    if lock:
        # Held while measuring only, not while building.
        import fcntl

        held = open(lock, "a")  # noqa: SIM115 - released by the finalizer
        fcntl.flock(held, fcntl.LOCK_EX)
        request.addfinalizer(held.close)
        print(f"holding {lock}; load average {os.getloadavg()[0]:.1f}")
    yield client, headers, request.param
    client.application.extensions["cropstack.catalog"].close()


QUERIES: dict[str, dict[str, Any]] = {
    "list (default sort)": {},
    "exact user:str": {"user:str:product_id": "P01234"},
    "exact user:str + name prefix (or)": {
        "user:str:photographer": "photographer_7",
        "name": "lake-*",
        "operator": "or",
    },
    "prefix user:str": {"user:str:product_id": "P0123*"},
    "prefix name": {"name": "mountain-lake*"},
    "range user:int": {"user:int:stock": "[1000,1500]"},
    "range user:double open": {"user:double:price": "{495,}"},
    "range user:date": {"user:date:shot": "['2016-01-01T00:00:00Z','2016-01-15T00:00:00Z']"},
    "range size+width": {"size": "[100000,200000]", "width": "{3000,}"},
    "range created": {"created": "['2019-06-01T00:00:00Z','2019-06-02T00:00:00Z']"},
    "array exact": {"user:array:labels": "river"},
    "text one word": {"user:text:caption": "festival"},
    "text two words": {"user:text:caption": "festival museum"},
    "name_text": {"name_text": "bridge"},
    "dynamic int range": {"dynamic:int:subject_area:width": "[1990,}"},
    "dynamic str exact": {"dynamic:str:version:text": "v7"},
    "sort size asc": {"sort": "size asc"},
    "sort user:int desc": {"sort": "user:int:stock desc"},
    "sort created,size + filter": {"sort": "created desc,size asc", "format": "png"},
    "facets labels (all images)": {"facets": "user:array:labels", "limit": 10},
    "facets labels + filter": {"facets": "user:array:labels,format", "user:int:stock": "[0,999]"},
    "count only (limit=0)": {"limit": 0, "user:array:labels": "lake"},
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_search_query(benchmark, bench_client, name):
    client, headers, database = bench_client
    url = "/sourceimages/bench?" + urlencode(QUERIES[name])
    # every query finds something: one that matches nothing measures only an empty index
    # probe (``array exact`` asked for a word no image was labelled with until 2026-11-30)
    answer = client.get(url, headers=headers).get_json()
    assert answer["total"] > 0, answer
    assert answer["items"] or name.startswith("count only"), answer

    def run() -> None:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)

    benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=2)
    RESULTS.setdefault(database, {})[name] = benchmark.stats.stats.mean
    MEDIANS.setdefault(database, {})[name] = benchmark.stats.stats.median


@pytest.mark.parametrize("sort", ["created desc", "size asc"])
def test_deep_cursor_paging(benchmark, bench_client, sort):
    """Follow the cursor 500 pages of 100 deep; time one page request at that depth."""
    client, headers, database = bench_client
    params: dict[str, Any] = {"sort": sort, "limit": 100}
    for _ in range(500):
        body = client.get("/sourceimages/bench?" + urlencode(params), headers=headers).get_json()
        params["offset"] = body["cursor"]
    url = "/sourceimages/bench?" + urlencode(params)

    def run() -> None:
        response = client.get(url, headers=headers)
        assert response.status_code == 200 and len(response.get_json()["items"]) == 100

    benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=2)
    RESULTS.setdefault(database, {})[f"cursor page 501 ({sort})"] = benchmark.stats.stats.mean
    MEDIANS.setdefault(database, {})[f"cursor page 501 ({sort})"] = benchmark.stats.stats.median


if __name__ == "__main__":
    # Build (or find) the cached SQLite catalog without measuring anything.
    scratch = Path(tempfile.mkdtemp(prefix="cropstack-bench-"))
    try:
        began = time.perf_counter()
        built, _ = cached_sqlite_catalog(scratch / "data")
        built.application.extensions["cropstack.catalog"].close()
        print(f"SQLite catalog of {IMAGES} images ready in {time.perf_counter() - began:.1f} s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
