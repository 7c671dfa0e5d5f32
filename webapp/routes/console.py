"""The browser console: static files under ``webapp/console/`` served at ``/console/``.

The console is plain HTML, CSS and JavaScript modules that talk to the public API of this
same server (docs/console.md); nothing is built or generated. Every answer carries
``CONSOLE_CSP``: the page may load only from this origin, so no inline script, no other
host, and no framing.
"""

from __future__ import annotations

import re
from pathlib import Path

from flask import Blueprint, Response, redirect, send_file

from webapp.errors import not_found

bp = Blueprint("console", __name__)

#: The directory of the console's files (shipped inside the package).
CONSOLE_DIR = Path(__file__).resolve().parents[1] / "console"

#: ``default-src 'self'`` as the issue asks; the other directives only restrict further
#: (no <base> rewriting, no framing by other sites, forms post only here).
CONSOLE_CSP = "default-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

# Only flat file names with a known type: no directories, no dot files, no traversal.
_FILE = re.compile(r"[a-z][a-z0-9-]{0,63}\.(html|js|css|svg)")
# Flask adds "; charset=utf-8" to the text types.
_TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}


def _file(name: str) -> Response:
    match = _FILE.fullmatch(name)
    path = CONSOLE_DIR / name
    if match is None or not path.is_file():
        raise not_found(f"Console file {name[:64]} not found")
    # no-cache: revalidated each load (ETag), so a new version is seen at once.
    response = send_file(path, mimetype=_TYPES[match.group(1)], conditional=True, max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = CONSOLE_CSP
    # The page must never send its address (it holds no secret, but nothing needs it).
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/console")
def console_root() -> Response:
    """Redirect to ``/console/`` so relative module paths resolve."""
    return redirect("/console/", code=301)


@bp.get("/console/")
def console_index() -> Response:
    """The console's single page (``index.html``)."""
    return _file("index.html")


@bp.get("/console/<path:name>")
def console_file(name: str) -> Response:
    """One of the console's static files; 404 in the error shape for anything else."""
    return _file(name)
