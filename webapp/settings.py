"""Every setting of the service, declared once.

A setting is read, in order of precedence, from the mapping given to ``create_app``,
then from the environment variable ``CROPSTACK_<NAME>`` (upper case), then its default.
The CLI turns its flags into that mapping. docs/settings.md lists them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from webapp.blobs import check_location


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _proxy_count(value: Any) -> int:
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be a whole number from 0 to 10, not {str(value)[:100]!r}") from None
    if not 0 <= count <= 10:
        raise ValueError(f"must be between 0 and 10, not {count}")
    return count


def _flush_seconds(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be a number of seconds, not {str(value)[:100]!r}") from None
    if not 0.1 <= seconds <= 3600:  # also refuses nan
        raise ValueError(f"must be between 0.1 and 3600 seconds, not {seconds}")
    return seconds


def _avif_effort(value: Any) -> int:
    try:
        effort = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError(f"must be a whole number from 0 to 9, not {str(value)[:100]!r}") from None
    if not 0 <= effort <= 9:
        raise ValueError(f"must be between 0 and 9, not {effort}")
    return effort


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: its name, default, parser and a one-line help text."""

    name: str
    default: Any
    parse: Callable[[Any], Any]
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", "./cropstack-data", str, "Directory holding the catalog and blobs."),
    Setting(
        "blob_store",
        "",
        check_location,
        "Where originals are stored: empty = the data dir; a directory; or "
        "`s3://bucket/prefix`, configured by `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, "
        "`AWS_SECRET_ACCESS_KEY`, `AWS_REGION` (docs/storage.md).",
    ),
    Setting(
        "signup",
        False,
        _bool,
        "Allow POST /users without authentication (rokka's open signup); off: 403, "
        "create accounts with `cropstack users create`.",
    ),
    Setting(
        "max_upload_bytes", 150 * 1024 * 1024, int, "Largest accepted request body, bytes (413)."
    ),
    Setting(
        "max_source_pixels",
        225_000_000,
        int,
        "Largest source image, width*height*frames; refused from the header (422).",
    ),
    Setting("max_source_frames", 1000, int, "Most frames an animated source may have (422)."),
    Setting(
        "max_font_bytes",
        10 * 1024 * 1024,
        int,
        "Largest TTF/OTF font upload, bytes (422): validating costs ~15 MB of memory per MB.",
    ),
    Setting(
        "max_svg_bytes",
        5 * 1024 * 1024,
        int,
        "Largest SVG source, bytes (422): parsing costs memory in proportion to the document.",
    ),
    Setting("max_output_side", 10_000, int, "Largest render width or height, px, after dpr."),
    Setting(
        "max_render_pixels",
        50_000_000,
        int,
        "Largest image any step of a render may hold (decoded source, each operation's "
        "result, the output), width*height px; past it 400, decided before decoding.",
    ),
    Setting(
        "max_animation_pixels",
        50_000_000,
        int,
        "Largest frames*width*height of any step of an animated render, px (400).",
    ),
    Setting(
        "max_render_work",
        1000.0,
        float,
        "Largest estimated work of one render, megapixel passes (docs/security.md); 400.",
    ),
    Setting(
        "expensive_render_work",
        60.0,
        float,
        "Renders and upload checks estimated above this many megapixel passes run in the "
        "expensive lane.",
    ),
    Setting(
        "render_timeout",
        10.0,
        float,
        "Deadline of one render or upload check, s; past it the render process is killed "
        "and the client gets 503.",
    ),
    Setting("render_domain", "", str, "Host suffix for {org}.{render_domain} render URLs."),
    Setting(
        "render_concurrency", 2, int, "Render processes of the cheap lane, per worker process."
    ),
    Setting(
        "expensive_render_concurrency",
        1,
        int,
        "Render processes of the expensive lane, per worker process.",
    ),
    Setting("render_nice", 15, int, "CPU niceness (0-19) of the expensive lane's processes."),
    Setting("render_queue_timeout", 1.0, float, "Seconds a render waits for a process before 503."),
    Setting(
        "render_queue_limit",
        4,
        int,
        "Renders that may wait per lane and worker process; past it 503 at once.",
    ),
    Setting(
        "decoded_cache_mb",
        128,
        int,
        "Decoded JPEG pixels kept for the next renders of the same image (srcset widths), "
        "MiB in all, in files shared by every render process of the server (on tmpfs: "
        "counted against memory); 0 = off.",
    ),
    Setting(
        "decoded_cache_dir",
        "",
        str,
        "Parent directory of the kept decodes (the server makes its own directory there "
        "and removes it when it stops); empty: /dev/shm when writable (tmpfs), else "
        "{data_dir}/kept-decodes.",
    ),
    Setting(
        "upload_concurrency",
        2,
        int,
        "Uploads read and checked at once per worker process; others wait as renders do.",
    ),
    Setting(
        "render_memory_mb",
        2048,
        int,
        "Address-space limit of each render process, MiB (RLIMIT_AS); 0 = none. A safety "
        "net on virtual memory, well above what the budgets let a render touch.",
    ),
    Setting(
        "render_recycle_mb",
        256,
        int,
        "A render process whose resident memory is above this after a job is replaced "
        "(its memory goes back at once), MiB; 0 = never for its size.",
    ),
    Setting(
        "render_max_jobs",
        2000,
        int,
        "Jobs after which a render process is replaced; 0 = never for its age.",
    ),
    Setting(
        "malloc_arena_max",
        2,
        int,
        "glibc malloc arenas per server process (web workers and render processes), each "
        "keeping its own freed pages; 0 = glibc's default (8 per core).",
    ),
    Setting(
        "malloc_mmap_threshold_kb",
        1024,
        int,
        "In the master and web workers: allocations at least this large, KiB, are mapped on "
        "their own and given back when freed (glibc's default threshold grows to the "
        "largest block freed, up to 32 MiB, after which upload bodies and outputs stay in "
        "the heap); 0 = glibc's default. Render processes use 32 MiB (their heap is "
        "trimmed when idle instead, see malloc_trim).",
    ),
    Setting(
        "malloc_trim",
        True,
        _bool,
        "Give free heap pages back to the system (glibc malloc_trim) once a render process "
        "or a web worker is quiet for a second, and in a render process at once when a job "
        "left it above render_recycle_mb.",
    ),
    Setting(
        "malloc_huge_pages",
        True,
        _bool,
        "Render processes ask the kernel for transparent huge pages (2 MiB) for their heap "
        "(glibc 2.35+: the glibc.malloc.hugetlb tunable; the kernel's transparent_hugepage "
        "mode must be madvise or always): a large decode's buffers then fault in 512 times "
        "less often. Nothing changes elsewhere.",
    ),
    Setting("render_cache", True, _bool, "Keep rendered outputs in a disk cache."),
    Setting(
        "render_cache_max_bytes",
        1 << 30,
        int,
        "Bound of the render cache, bytes (4 KiB blocks); least recently used go first.",
    ),
    Setting(
        "alias_max_age",
        3600,
        int,
        "Cache-Control max-age, s, of renders through an alias (`-_name_-`), which can be "
        "repointed; renders by hash are immutable for a year.",
    ),
    Setting(
        "health_min_free_bytes",
        64 * 1024 * 1024,
        int,
        "GET /healthz answers 503 when the data dir has less free space, bytes.",
    ),
    Setting(
        "busy_timeout_ms",
        5000,
        int,
        "Longest wait for the catalog's write lock, ms (SQLite busy timeout, PostgreSQL "
        "lock timeout); past it writes answer 503.",
    ),
    Setting(
        "database_url",
        "",
        str,
        "Catalog database: empty for SQLite in the data dir, or postgresql://user:pass@host"
        "/db (docs/server.md).",
    ),
    Setting(
        "database_pool_size",
        8,
        int,
        "Most PostgreSQL connections one server process holds (its pool's max_size).",
    ),
    Setting("restore_days", 30, int, "Days a deleted source image can be restored."),
    Setting(
        "preview_stack_days",
        3,
        int,
        "Days after its last save a `_preview*` stack is deleted by `cropstack gc`.",
    ),
    Setting(
        "remote_fetch_allow_private",
        False,
        _bool,
        "Allow url[N] uploads and remote render URLs from private IPs.",
    ),
    Setting(
        "remote_fetch_timeout", 20.0, float, "Total seconds for one url[N] or remote image fetch."
    ),
    Setting(
        "remote_fetch_max_redirects",
        10,
        int,
        "Redirects followed by one url[N] or remote image fetch.",
    ),
    Setting(
        "remote_fetch_connect_timeout",
        5.0,
        float,
        "Seconds to connect for one url[N] or remote image fetch.",
    ),
    Setting(
        "remote_refresh_s",
        0.0,
        float,
        "Seconds after which a render URL's remote image is fetched again (changed bytes "
        "become a new image); 0: never, as rokka (docs/render.md).",
    ),
    Setting(
        "blob_gc_grace_s",
        86400.0,
        float,
        "Seconds an unreferenced blob is kept before `cropstack gc` removes it.",
    ),
    Setting("vips_concurrency", 1, int, "libvips worker threads per render (VIPS_CONCURRENCY)."),
    Setting(
        "avif_effort",
        2,  # engine.formats.DEFAULT_AVIF_EFFORT (not imported: the master loads no libvips)
        _avif_effort,
        "AVIF encoder CPU effort, 0 (fastest) to 9 (smallest files); each step up costs "
        "1.5-3x the time for a few % smaller files (docs/performance.md). Counts in the "
        "render's estimated work.",
    ),
    Setting(
        "access_log",
        True,
        _bool,
        "Write one JSON line per request to stderr (route, status, duration, bytes, org; "
        "never a key or signature).",
    ),
    Setting(
        "metrics",
        True,
        _bool,
        "Answer GET /metrics (Prometheus text format, no authentication: keep it off the "
        "public internet at the proxy); off: 404.",
    ),
    Setting(
        "stats_flush_seconds",
        30.0,
        _flush_seconds,
        "Seconds between a worker's writes of its render counts to the catalog (GET /stats "
        "lags by up to this much; 0.1 to 3600); a stopping worker writes at once.",
    ),
    Setting(
        "token_secret",
        "",
        str,
        "Secret that signs JWTs from /user/apikeys/token; empty: a random one kept with "
        "the catalog ({data_dir}/token-secret, or in the PostgreSQL catalog, shared by "
        "every node).",
    ),
    Setting(
        "proxy_count",
        0,
        _proxy_count,
        "Reverse proxies in front whose X-Forwarded-For is trusted for the client address "
        "(token IP protection); 0: the connecting address.",
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved settings of one app instance; field names match ``SETTINGS``."""

    data_dir: str
    blob_store: str
    signup: bool
    max_upload_bytes: int
    max_source_pixels: int
    max_source_frames: int
    max_font_bytes: int
    max_svg_bytes: int
    max_output_side: int
    max_render_pixels: int
    max_animation_pixels: int
    max_render_work: float
    expensive_render_work: float
    render_timeout: float
    render_domain: str
    render_concurrency: int
    expensive_render_concurrency: int
    render_nice: int
    render_queue_timeout: float
    render_queue_limit: int
    decoded_cache_mb: int
    decoded_cache_dir: str
    upload_concurrency: int
    render_memory_mb: int
    render_recycle_mb: int
    render_max_jobs: int
    malloc_arena_max: int
    malloc_mmap_threshold_kb: int
    malloc_trim: bool
    malloc_huge_pages: bool
    render_cache: bool
    render_cache_max_bytes: int
    alias_max_age: int
    health_min_free_bytes: int
    busy_timeout_ms: int
    database_url: str
    database_pool_size: int
    restore_days: int
    preview_stack_days: int
    remote_fetch_allow_private: bool
    remote_fetch_timeout: float
    remote_fetch_max_redirects: int
    remote_fetch_connect_timeout: float
    remote_refresh_s: float
    blob_gc_grace_s: float
    vips_concurrency: int
    avif_effort: int
    access_log: bool
    metrics: bool
    stats_flush_seconds: float
    token_secret: str
    proxy_count: int


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Resolve every setting from ``overrides``, then ``environ``, then defaults.

    Raises ``ValueError`` naming the setting when a value does not parse, or when an
    override names no known setting.
    """
    overrides = dict(overrides or {})
    environ = os.environ if environ is None else environ
    known = {s.name for s in SETTINGS}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.name in overrides:
            raw = overrides[setting.name]
        else:
            raw = environ.get(env_var(setting), setting.default)
        try:
            values[setting.name] = setting.parse(raw)
        except (TypeError, ValueError) as exc:
            # The setting, where it came from and what is allowed; never Python's own
            # wording ("invalid literal for int() with base 10").
            allowed = _ALLOWED.get(setting.parse)
            if allowed is None:  # a parser of this module, whose message says the range
                raise ValueError(f"setting {setting.name} ({env_var(setting)}) {exc}") from exc
            raise ValueError(
                f"setting {setting.name} ({env_var(setting)}) must be {allowed}; "
                f"got {str(raw)[:100]!r}"
            ) from exc
    assert {f.name for f in fields(Settings)} == known, "Settings and SETTINGS differ"
    return Settings(**values)


_ALLOWED: dict[Callable[[Any], Any], str] = {
    int: "a whole number",
    float: "a number",
    _bool: "true or false (also 1/0, yes/no, on/off)",
}


def env_var(setting: Setting) -> str:
    """The environment variable that sets ``setting``: ``CROPSTACK_<NAME>``."""
    return f"CROPSTACK_{setting.name.upper()}"


def settings_markdown() -> str:
    """The settings table of docs/settings.md, generated from ``SETTINGS``.

    Regenerate with ``python -m webapp.cli settings-doc > docs/settings.md``.
    """
    lines = [
        "# Settings",
        "",
        "<!-- Generated by `python -m webapp.cli settings-doc > docs/settings.md`;"
        " do not edit. -->",
        "",
        "Each setting is read from the mapping given to `create_app` (the CLI flags of",
        "`cropstack serve` fill it), then from its environment variable, then its default.",
        "",
        "| Name | Environment variable | Default | Meaning |",
        "| --- | --- | --- | --- |",
    ]
    for setting in SETTINGS:
        default = setting.default
        shown = str(default).lower() if isinstance(default, bool) else repr(default)
        if isinstance(default, str):
            shown = f'"{default}"'
        cells = [f"`{setting.name}`", f"`{env_var(setting)}`", f"`{shown}`", setting.help]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
