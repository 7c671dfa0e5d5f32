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


def _render_host() -> bool:
    """Whether this request came to an organization's render host ``{org}.{render_domain}``:
    there ``/console/...`` is a render through a stack called ``console``, not the console
    (which belongs to the API's host)."""
    from webapp.routes.render import org_from_host

    return org_from_host() is not None


def _render(path: str) -> Response:
    from webapp.routes.render import render

    return render(path)


@bp.get("/console", defaults={"name": None})
@bp.get("/console/", defaults={"name": ""})
@bp.get("/console/<path:name>")
def console_file(name: str | None) -> Response:
    """``/console`` redirects to ``/console/`` (relative module paths need the slash);
    ``/console/`` is ``index.html``; else one of the console's files, 404 in the error
    shape for anything else."""
    if _render_host():
        return _render("console" + ("" if name is None else "/" + name))
    if name is None:
        return redirect("/console/", code=301)
    return _file(name or "index.html")
