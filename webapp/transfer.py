"""``cropstack migrate``: copy an installation's catalog and originals to PostgreSQL and an
S3-compatible store (docs/deploy.md "Moving to PostgreSQL and S3").

The source is the data directory's catalog and blob store as its settings name them (on a
single machine: SQLite and the local disk); the target a PostgreSQL URL and a blob store
location (``s3://bucket/prefix``, or a directory). Both sides are reached through the
catalog and blob store interfaces, so the copy runs the same transactions, checks and
error handling as the server.

Order (each step may be interrupted and the command run again; it goes on where it was):

1. the target schema is created or upgraded; a target catalog holding an organization the
   source lacks belongs to another installation, and one holding rows the source lacks
   that are newer than everything in the source is already in service: both are refused;
2. accounts and stacks: rows the target lacks are inserted, rows that differ overwritten;
3. images, in pages of source rows: first every original a page's rows need and the
   target store lacks is read from the source (verified against its SHA-256) and written
   to the target (confirmed by the store), then the page's new or changed rows commit.
   An original that cannot be read leaves its rows out (and the run unverified);
4. target rows the source no longer has (deleted there during an earlier run) are removed,
   children first; the target's search index and facet counts follow by themselves; then
   the usage figures per day that the target's triggers also write (``usage_storage``)
   are made the source's, and usage counting is dated from the source's start;
5. verification: per copied table the row count and an order-independent SHA-256 of every
   row on both sides; per derived table (search index, facet counts) the row count; every
   original the target catalog references is read back from the target store and hashed.
   A damaged copy is removed from the target, so that the next run copies it again.

Nothing is removed from the source. A run while the old server still takes writes copies
the bulk; stop it (or its writers) and run again: the second run copies only the
difference and its verification is the one to trust.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

from webapp.blobs import BlobStore, BlobUnavailable
from webapp.catalog.interface import CatalogHandle
from webapp.catalog.tablerows import COPIED, DERIVED, TABLES, Key, Row, Table
from webapp.catalog.usage import USAGE_MIGRATION


class TransferRefused(Exception):
    """The target cannot take this copy (it holds another installation's catalog)."""


@dataclass
class TableCheck:
    """One table's verification: row counts and, for copied tables, row digests."""

    name: str
    source_rows: int
    target_rows: int
    source_digest: str | None = None
    target_digest: str | None = None

    @property
    def ok(self) -> bool:
        """Counts equal and, where compared, digests equal."""
        return (
            self.source_rows == self.target_rows and self.source_digest == self.target_digest
        )


@dataclass
class TransferReport:
    """What one run copied and what its verification found."""

    #: table -> (inserted, overwritten, removed) rows.
    written: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    blobs_copied: int = 0
    bytes_copied: int = 0
    blobs_present: int = 0
    #: Source originals that could not be read: (key, reason); their rows were left out.
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    checks: list[TableCheck] = field(default_factory=list)
    originals_verified: int = 0
    bytes_verified: int = 0
    missing: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        """Every table matches and every original referenced is in the target, intact."""
        return (
            all(check.ok for check in self.checks)
            and not self.unreadable
            and not self.missing
            and not self.damaged
        )

    def lines(self) -> list[str]:
        """The verification table and the summary, for stdout."""
        out = [f"{'table':<26} {'source':>10} {'target':>10}  rows sha-256"]
        for check in self.checks:
            digest = "(derived)" if check.source_digest is None else (
                "equal" if check.source_digest == check.target_digest else "DIFFERENT"
            )  # fmt: skip
            verdict = "ok" if check.ok else "MISMATCH"
            out.append(
                f"{check.name:<26} {check.source_rows:>10} {check.target_rows:>10}  "
                f"{digest:<10} {verdict}"
            )
        copied = sum(n for n, _, _ in self.written.values())
        changed = sum(c for _, c, _ in self.written.values())
        removed = sum(r for _, _, r in self.written.values())
        out.append(
            f"rows: {copied} inserted, {changed} overwritten, {removed} removed; originals: "
            f"{self.blobs_copied} copied ({self.bytes_copied / 1e6:.1f} MB), "
            f"{self.blobs_present} already there"
        )
        out.append(
            f"originals verified by SHA-256 in the target: {self.originals_verified} "
            f"({self.bytes_verified / 1e6:.1f} MB); {len(self.missing)} missing, "
            f"{len(self.damaged)} damaged, {len(self.unreadable)} unreadable in the source"
        )
        out.append("migrate: verified" if self.verified else "migrate: NOT verified")
        return out

    def problems(self) -> list[str]:
        """One line per failure, for stderr."""
        found = [f"source original {key} cannot be read ({why}); its images were not copied"
                 for key, why in self.unreadable]  # fmt: skip
        found += [f"original {key} is missing in the target store" for key in self.missing]
        found += [
            f"original {key} was damaged in the target store (removed: run migrate again "
            "to copy it anew)"
            for key in self.damaged
        ]
        found += [
            f"table {c.name}: {c.source_rows} rows in the source, {c.target_rows} in the "
            "target" + ("" if c.source_digest == c.target_digest else ", contents differ")
            for c in self.checks
            if not c.ok
        ]
        return found


class Progress:
    """Progress on stderr: a tqdm bar per phase on a terminal; elsewhere (a log, a pipe)
    a plain line at every tenth of a phase, since a bar's carriage returns garble logs."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self._bar: Any = None
        self._name = ""
        self._total = 0
        self._done = 0
        self._next = 0

    def start(self, name: str, total: int, unit: str) -> None:
        """Begin a phase of ``total`` ``unit`` items."""
        self.close()
        self._name, self._total, self._done, self._unit = name, total, 0, unit
        self._next = max(1, total // 10)
        if self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=name, unit=unit, file=self.stream,
                             dynamic_ncols=True)  # fmt: skip
        else:
            print(f"migrate: {name}: {total} {unit}", file=self.stream, flush=True)

    def advance(self, count: int = 1) -> None:
        """``count`` more items of the phase are done."""
        self._done += count
        if self._bar is not None:
            self._bar.update(count)
        elif self._done >= self._next or self._done == self._total:
            print(f"migrate: {self._name}: {self._done}/{self._total} {self._unit}",
                  file=self.stream, flush=True)  # fmt: skip
            while self._next <= self._done:
                self._next += max(1, self._total // 10)

    def close(self) -> None:
        """End the phase's bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _row_digest(rows: Iterable[Row]) -> int:
    """The sum (mod 2**256) of the SHA-256 of each row's JSON: equal for equal multisets
    of rows whatever order each database returns them in."""
    total = 0
    for row in rows:
        encoded = json.dumps(list(row), separators=(",", ":"), ensure_ascii=False)
        total += int.from_bytes(hashlib.sha256(encoded.encode()).digest(), "big")
    return total % 2**256


def _table_digest(catalog: CatalogHandle, table: str) -> str:
    total = 0
    for page in catalog.table_rows.pages(table):
        total += _row_digest(page)
    return f"{total % 2**256:064x}"


def _check_target_is_ours(source: CatalogHandle, target: CatalogHandle) -> None:
    """Refuse a target catalog with an organization the source lacks: it is another
    installation's, and removing rows the source lacks would destroy it."""
    ours = set(source.table_rows.keys("organizations"))
    foreign = [key[0] for key in target.table_rows.keys("organizations") if key not in ours]
    if foreign:
        raise TransferRefused(
            f"the target database holds {len(foreign)} organization(s) this data directory "
            "does not have: it is another installation's catalog; migrate into an empty "
            "database"
        )


def _check_target_not_in_service(source: CatalogHandle, target: CatalogHandle) -> None:
    """Refuse a target holding rows the source lacks that were created after everything
    in the source: a deployment already serving from the target wrote them (a rerun
    after the switch would overwrite its changes and remove them). Rows the source lost
    since an earlier run are older than its latest row and are removed as usual."""
    for spec in COPIED:
        if "created" not in spec.columns:
            continue  # usage rows: no creation time (rows per day)
        latest = source.table_rows.latest(spec.name)
        ours = set(source.table_rows.keys(spec.name))
        extra = [key for key in target.table_rows.keys(spec.name) if key not in ours]
        created = spec.columns.index("created")
        newer = [
            row for row in target.table_rows.lookup(spec.name, extra).values()
            if latest is None or row[created] > latest
        ]  # fmt: skip
        if newer:
            raise TransferRefused(
                f"the target database holds {len(newer)} {spec.name} row(s) created after "
                "everything in this data directory: a deployment is already using it; "
                "migrate would overwrite or remove what it wrote, so it stops"
            )


def _sync_rows(
    source_rows: list[Row], target: CatalogHandle, table: str
) -> tuple[list[Row], list[Row]]:
    """(new, changed): the rows of ``source_rows`` the target lacks or holds otherwise."""
    spec = TABLES[table]
    existing = target.table_rows.lookup(table, [spec.key_of(row) for row in source_rows])
    new = [row for row in source_rows if spec.key_of(row) not in existing]
    changed = [
        row for row in source_rows
        if spec.key_of(row) in existing and existing[spec.key_of(row)] != row
    ]  # fmt: skip
    return new, changed


def _copy_originals(
    keys: list[str],
    source: BlobStore,
    target: BlobStore,
    pool: ThreadPoolExecutor,
    report: TransferReport,
) -> set[str]:
    """Copy the originals ``keys`` from ``source`` to ``target``; the keys now stored.

    Each is read verified and written confirmed; one the source cannot give is recorded
    in ``report.unreadable``. A target that fails (unreachable, full, read-only) raises.
    """

    def copy(key: str) -> tuple[str, int | str]:
        try:
            data = source.get(key)
        except BlobUnavailable as exc:
            return key, exc.reason
        stored = target.put(data)
        if stored.key != key:  # cannot happen with a verified read; never commit on it
            return key, "the copy hashes to another key"
        return key, len(data)

    done: set[str] = set()
    for key, outcome in pool.map(copy, keys):
        if isinstance(outcome, int):
            done.add(key)
            report.blobs_copied += 1
            report.bytes_copied += outcome
        else:
            report.unreadable.append((key, outcome))
    return done


def migrate(
    source: CatalogHandle,
    source_blobs: BlobStore,
    target: CatalogHandle,
    target_blobs: BlobStore,
    *,
    jobs: int = 4,
    page_rows: int = 200,
    progress: Progress | None = None,
) -> TransferReport:
    """Copy ``source`` (catalog and originals) into ``target`` and verify the copy.

    ``jobs`` (1-64) originals are copied or verified at once; images commit in pages of
    ``page_rows``. Raises ``TransferRefused`` for a foreign target, and the stores' and
    catalogs' own errors (``StoreUnavailable``, ``StorageFull``, ``CatalogUnavailable``)
    when a side fails; what was committed before stays and a rerun goes on from there.
    """
    progress = progress or Progress()
    report = TransferReport()
    _check_target_is_ours(source, target)
    _check_target_not_in_service(source, target)
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, 64))) as pool:
        for spec in COPIED:
            if spec.name == "sourceimages":
                _copy_images(source, source_blobs, target, target_blobs, pool, report,
                             page_rows=page_rows, progress=progress)  # fmt: skip
            elif not spec.kept_by_triggers:
                _copy_table(source, target, spec.name, report)
        _remove_extras(source, target, report, [s for s in COPIED if not s.kept_by_triggers])
        # Last: the image writes above moved what the target's triggers keep.
        for spec in COPIED:
            if spec.kept_by_triggers:
                _copy_table(source, target, spec.name, report)
        _remove_extras(source, target, report, [s for s in COPIED if s.kept_by_triggers])
        applied = source.table_rows.migration_applied(USAGE_MIGRATION)
        if applied is not None:
            target.table_rows.backdate_migration(USAGE_MIGRATION, applied)
        _verify(source, target, target_blobs, pool, report, progress)
    progress.close()
    return report


def _copy_table(
    source: CatalogHandle, target: CatalogHandle, table: str, report: TransferReport
) -> None:
    """Steps 2 and 4: a small table in one transaction (new rows, changed rows)."""
    rows = [row for page in source.table_rows.pages(table) for row in page]
    new, changed = _sync_rows(rows, target, table)
    target.table_rows.write(table, new, changed)
    report.written[table] = (len(new), len(changed), 0)


def _copy_images(
    source: CatalogHandle,
    source_blobs: BlobStore,
    target: CatalogHandle,
    target_blobs: BlobStore,
    pool: ThreadPoolExecutor,
    report: TransferReport,
    *,
    page_rows: int,
    progress: Progress,
) -> None:
    """Step 3: originals first, then the image rows that need them, page by page."""
    spec = TABLES["sourceimages"]
    blob_column = spec.columns.index("blob_key")
    present = {info.key for info in target_blobs.list()}
    progress.start("images", source.table_rows.count("sourceimages"), "images")
    inserted = overwritten = 0
    counted: set[str] = set()  # originals already counted as present (shared by rows)
    for page in source.table_rows.pages("sourceimages", page_rows):
        needed = {row[blob_column] for row in page}
        report.blobs_present += len((needed & present) - counted)
        counted |= needed
        present |= _copy_originals(sorted(needed - present), source_blobs, target_blobs,
                                   pool, report)  # fmt: skip
        # A row commits only once its original is stored in the target.
        ready = [row for row in page if row[blob_column] in present]
        new, changed = _sync_rows(ready, target, "sourceimages")
        target.table_rows.write("sourceimages", new, changed)
        inserted += len(new)
        overwritten += len(changed)
        progress.advance(len(page))
    report.written["sourceimages"] = (inserted, overwritten, 0)


def _remove_extras(
    source: CatalogHandle, target: CatalogHandle, report: TransferReport, tables: list[Table]
) -> None:
    """Step 4: target rows of ``tables`` whose key the source lacks, children first."""
    for spec in reversed(tables):
        if spec.name == "organizations":  # never removed (a foreign target was refused)
            continue
        ours: set[Key] = set(source.table_rows.keys(spec.name))
        extra = [key for key in target.table_rows.keys(spec.name) if key not in ours]
        removed = target.table_rows.delete(spec.name, extra) if extra else 0
        inserted, overwritten, _ = report.written.get(spec.name, (0, 0, 0))
        report.written[spec.name] = (inserted, overwritten, removed)


def _verify(
    source: CatalogHandle,
    target: CatalogHandle,
    target_blobs: BlobStore,
    pool: ThreadPoolExecutor,
    report: TransferReport,
    progress: Progress,
) -> None:
    """Step 5: tables by count and digest, originals by reading them back."""
    for spec in COPIED:
        report.checks.append(
            TableCheck(
                spec.name,
                source.table_rows.count(spec.name),
                target.table_rows.count(spec.name),
                _table_digest(source, spec.name),
                _table_digest(target, spec.name),
            )
        )
    for name in DERIVED:
        report.checks.append(
            TableCheck(name, source.table_rows.count(name), target.table_rows.count(name))
        )
    blob_column = TABLES["sourceimages"].columns.index("blob_key")
    keys = sorted(
        {row[blob_column] for page in target.table_rows.pages("sourceimages") for row in page}
    )
    progress.start("verify originals", len(keys), "originals")

    def check(key: str) -> tuple[str, int | str]:
        try:
            return key, len(target_blobs.get(key))  # get hashes what it read
        except BlobUnavailable as exc:
            return key, "missing" if exc.reason == "missing" else "damaged"

    for key, outcome in pool.map(check, keys):
        if isinstance(outcome, int):
            report.originals_verified += 1
            report.bytes_verified += outcome
        elif outcome == "missing":
            report.missing.append(key)
        else:
            report.damaged.append(key)
            # Removed so that the next run, which copies what the target lacks, replaces it.
            target_blobs.delete(key)
        progress.advance()


def migrate_command(
    settings: Any,
    source: CatalogHandle,
    to_database_url: str,
    to_blob_store: str,
    *,
    jobs: int = 4,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """``cropstack migrate`` once the source catalog is open: check the target's URLs,
    reach both target parts, copy, verify; the exit status (0 verified, 1 not verified
    or a side failed, 2 refused arguments)."""
    from webapp.blobs import StorageFull, StoreUnavailable, check_location, open_store
    from webapp.catalog.errors import CatalogError, CatalogUnavailable
    from webapp.catalog.postgres import PostgresBackend

    def fail(message: str, status: int) -> int:
        print(f"cropstack: {message}", file=err)
        return status

    url = to_database_url.strip()
    if not url.startswith(("postgresql://", "postgres://")):
        return fail("--to-database-url must be a postgresql:// URL "
                    "(postgresql://user:password@host:5432/database)", 2)  # fmt: skip
    if url == settings.database_url.strip():
        return fail("--to-database-url is the catalog this data directory already uses", 2)
    try:
        location = check_location(to_blob_store)
    except ValueError as exc:
        return fail(f"--to-blob-store: {exc}", 2)
    if not location:
        return fail("--to-blob-store must be s3://bucket/prefix (or a directory)", 2)
    target_blobs = open_store(location, settings.data_dir)
    source_blobs = open_store(settings.blob_store, settings.data_dir)
    try:
        target_blobs.probe()
    except (StoreUnavailable, StorageFull) as exc:
        return fail(f"cannot use the target blob store: {exc}", 1)
    backend = PostgresBackend(url, busy_timeout_ms=settings.busy_timeout_ms, pool_size=2)
    try:
        try:
            backend.migrate()
            target = backend.open()
        except CatalogUnavailable as exc:
            return fail(f"cannot reach the target database: {exc.detail}", 1)
        print(f"migrate: from {_describe_source(settings)} and {source_blobs.location} "
              f"to {backend.description} and {target_blobs.location}",
              file=err, flush=True)  # fmt: skip
        try:
            report = migrate(source, source_blobs, target, target_blobs, jobs=jobs,
                             progress=Progress(err))  # fmt: skip
        except TransferRefused as exc:
            return fail(str(exc), 2)
        except (StoreUnavailable, StorageFull) as exc:
            return fail(f"migrate stopped (run it again to go on): {exc}", 1)
        except CatalogError as exc:
            detail = getattr(exc, "detail", exc.message)
            return fail(f"migrate stopped (run it again to go on): catalog: {detail}", 1)
        finally:
            target.close()
    finally:
        backend.close()
    for line in report.problems():
        print(f"cropstack: {line}", file=err)
    for line in report.lines():
        print(line, file=out)
    return 0 if report.verified else 1


def _describe_source(settings: Any) -> str:
    if settings.database_url:
        from webapp.catalog.postgres import describe

        return f"PostgreSQL {describe(settings.database_url)}"
    from pathlib import Path

    return f"SQLite {Path(settings.data_dir) / 'catalog.db'}"

