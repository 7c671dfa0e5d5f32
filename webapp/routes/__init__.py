"""HTTP routes, one blueprint per area. Routes stay thin: parse, authorise, call, answer."""

from __future__ import annotations

from flask import Flask

#: First path segments that belong to the API and can never be organization names.
RESERVED_NAMES: frozenset[str] = frozenset(
    {
        "sourceimages",
        "stacks",
        "users",
        "user",
        "organizations",
        "operations",
        "stackoptions",
        "stats",
        "utils",
        "healthz",
        "billing",
        "memberships",
        "render",
        "metrics",
        "openapi",
        "console",
    }
)

#: Content-Security-Policy of every answer that carries an original's bytes (download,
#: ``source_file``): originals may be SVG with script; opened directly, they run nothing,
#: load nothing and get a unique origin. See docs/render.md "Headers".
ORIGINAL_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


def register_routes(app: Flask) -> None:
    """Register every blueprint; the render catch-all goes last."""
    from webapp.routes import (
        accounts,
        albums,
        aliases,
        console,
        iiif,
        index,
        operator,
        render,
        service,
        sourceimages,
        stacks,
        stats,
        utils,
    )

    # A trailing slash answers as the path without it (people and docs type both); set
    # before the rules are bound, which read the map's default.
    app.url_map.strict_slashes = False
    app.register_blueprint(index.bp)
    app.register_blueprint(operator.bp)
    app.register_blueprint(service.bp)
    app.register_blueprint(console.bp)
    app.register_blueprint(accounts.bp)
    app.register_blueprint(sourceimages.bp)
    app.register_blueprint(stacks.bp)
    app.register_blueprint(utils.bp)
    app.register_blueprint(stats.bp)
    app.register_blueprint(iiif.bp)
    app.register_blueprint(aliases.bp)
    app.register_blueprint(albums.bp)
    app.register_blueprint(render.bp)
