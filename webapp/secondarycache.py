"""composition ``cache: true``: a secondary stack rendered once, kept in the render cache
and reused by every render that composes the same secondary.

rokka's template demo sets ``cache: true`` on a composition whose ``secondary_stack``
renders the same box of text for many main renders; its docs say no more. cropstack gives
it this meaning: the secondary stack is rendered as a render of its own (its own budgets,
lane and deadline, output PNG) under the stack's name and the hash of the image it renders,
keyed by its plan (``RenderPlan.canonical()``: its operations with their evaluated values,
hence its variables), stored in the render cache, and handed to the main render as an
image. Replacing or deleting the secondary stack, or deleting that image, makes the entry
unreachable or purges it, as for any render. Without the option the secondary stack is
rendered inside every main render that is not itself cached. With the render cache off
(``render_cache`` false) nothing is kept and every secondary is rendered in place.

A cached secondary is an image without areas: ``resize_mode: fill`` cuts it around its
centre, where an uncached one is cut around the subject area its stack carried along.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import engine
from webapp import renderer
from webapp.errors import ApiError
from webapp.rendercache import CacheKey, RenderCache
from webapp.settings import Settings


def prerender(
    settings: Settings,
    org_id: str,
    primary: Mapping[str, Any],
    renders: Mapping[str, engine.SecondaryRender],
    *,
    cache: RenderCache | None,
    read_source: Callable[[Mapping[str, Any]], bytes],
    sources: renderer.Sources,
) -> tuple[dict[str, engine.SecondaryRender], dict[str, engine.Resource]]:
    """The secondary renders still to run inside the main render, and the ones asked to
    be cached (``SecondaryRender.cache``) as image resources under the same keys: read
    from ``cache``, else rendered now (PNG) and stored. ``primary`` is the main render's
    image row (what a secondary stack without ``secondary_image`` renders);
    ``read_source(row)`` reads an original. Raises what a render raises (400 past a
    budget, 503 busy, 404 for a missing image of the secondary stack)."""
    if cache is None:
        return dict(renders), {}
    left: dict[str, engine.SecondaryRender] = {}
    done: dict[str, engine.Resource] = {}
    for key, sub in renders.items():
        if not sub.cache:
            left[key] = sub
            continue
        row = primary if sub.source is None else sources.find(sub.source)
        if row is None:  # found when the plan was built; deleted since
            raise ApiError(404, f"secondary_image {sub.source} is not found")
        entry = CacheKey.build(
            org_id=org_id,
            stack=sub.stack,
            image_hash=row["hash"],
            plan=sub.plan.canonical(),
            ext=sub.plan.output_format,
        )
        body = cache.get(entry)
        if body is None:
            read = (lambda r: lambda: read_source(r))(row)
            body = renderer.render_stored(
                settings, sub.plan, row, read_source=read, sources=sources
            ).body
            cache.put(entry, body)  # never raises: a failed write is logged
        done[key] = engine.Resource(body, engine.inspect(body), None)
    return left, done
