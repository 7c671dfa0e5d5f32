"""Render URLs: ``GET/HEAD /{org}/{stack}[/{overrides}...]/{hash}[/{slug}].{ext}``.

``{hash}`` may be an alias, ``-_{name}_-`` (webapp/routes/aliases.py).

Also ``/{stack}/...`` without the organization when the request's host is
``{org}.{render_domain}``. The route is a thin story: find the organization, parse the
URL into a request (stacks), load stack and image (catalog), check signatures, build the
plan (stacks), answer from the cache or render (engine), and set the headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Response, request
from werkzeug.utils import get_content_type

import engine
from stacks.errors import StackError, UrlNotFound
from stacks.evaluation import RenderContext, header_name, image_fields
from stacks.plan import RenderPlan
from stacks.resolve import build_plan
from stacks.stack import PREVIEW_PREFIX, StackDefinition, parse_stack_json
from stacks.url import RenderRequest, alias_name, parse_render_path
from webapp import hitmemo, renderer, secondarycache
from webapp.app import blobs, catalog, render_cache, settings
from webapp.blobs.originals import original_file, read_original
from webapp.errors import ApiError
from webapp.metadata import canonical_json
from webapp.remoteimages import policy, redirect_rule, remote_image, remote_url
from webapp.rendercache import CacheKey
from webapp.routes import ORIGINAL_CSP, RESERVED_NAMES
from webapp.routes.aliases import aliased_hash
from webapp.signing import SignatureError, verify
from webapp.usagecounter import mark_delivery

bp = Blueprint("render", __name__)

CACHE_CONTROL = "public, max-age=31536000, immutable"
NO_STORE = "no-store"


def org_from_host() -> str | None:
    """The organization of a ``{org}.{render_domain}`` request host, else None."""
    domain = settings().render_domain.lower()
    host = request.host.split(":", 1)[0].lower()
    if domain and host.endswith("." + domain):
        return host[: -len(domain) - 1]
    return None


def split_org(path: str) -> tuple[str, str, str]:
    """(organization, path after it, the raw path prefix to sign from)."""
    hosted = org_from_host()
    if hosted is not None:
        return hosted, path, ""
    org, _, rest = path.partition("/")
    if not rest or org in RESERVED_NAMES:
        raise UrlNotFound("not found")
    return org, rest, "/" + org


def _load_stack(org_id: str, name: str) -> StackDefinition:
    stored = catalog().stacks.get(org_id, name)
    if stored is None:
        raise UrlNotFound(f"stack {name} not found")
    return parse_stack_json(stored["definition"], name)


def find_image(org: dict[str, Any], image_hash: str) -> dict[str, Any]:
    """The image ``image_hash`` of ``org``, or else of its ``render_org_fallback``
    organization (one level: a fallback's own fallback is not followed). Only renders look
    there; the API and search never show the fallback's images."""
    image = catalog().images.find(org["id"], image_hash)
    fallback = org["options"].get("render_org_fallback")
    if image is None and isinstance(fallback, str) and fallback != org["name"]:
        other = catalog().accounts.org_by_name(fallback)
        if other is not None:
            image = catalog().images.find(other["id"], image_hash)
    if image is None:
        raise UrlNotFound(f"image {image_hash} not found")
    return image


def refuse_font(image: dict[str, Any]) -> None:
    """422 when ``image`` is a font: an input of the text operation, never an image to
    render or deliver (checked after the signature, so an unsigned request learns nothing
    of a protected image)."""
    if image["format"] in engine.FONT_FORMATS:
        raise ApiError(
            422,
            f"source image {image['hash']} is a font ({image['format']}); fonts are used by "
            "the text operation and cannot be rendered",
        )


def check_signature(org: dict[str, Any], org_prefix: str) -> datetime | None:
    """403 unless the request URL is signed with one of the organization's keys.

    Returns the signature's ``until`` when it is time-limited (None otherwise).

    The raw URI is used as sent (``RAW_URI``/``REQUEST_URI``), since the signature covers
    the encoded form. On the shared host the path may be signed with or without the
    ``/{org}`` prefix: rokka clients sign the path of the URL they built.
    """
    raw_uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw_uri:
        raw_path, _, raw_query = raw_uri.partition("?")
    else:
        raw_path, raw_query = request.path, request.query_string.decode("latin-1")
    keys = [k.get("key", "") for k in org.get("signing_keys", [])]
    paths = [raw_path]
    if org_prefix and raw_path.startswith(org_prefix + "/"):
        paths.append(raw_path[len(org_prefix) :])
    error: SignatureError | None = None
    for candidate in paths:
        try:
            return verify(candidate, raw_query, keys)
        except SignatureError as exc:
            error = error or exc
    raise ApiError(403, str(error))


def _secondary_renders(
    org_id: str, plan: RenderPlan, req: RenderRequest, primary: dict[str, Any]
) -> tuple[dict[str, engine.SecondaryRender], bool]:
    """The stored stacks the plan's compositions render their secondary through
    (``secondary_stack``), each built into a plan of its own.

    A secondary stack renders ``secondary_image`` when set, else the render's own image. Its
    variables are ``secondary_stack_variables`` (query text), over the render URL's variables
    the stack declares (rokka passes those on). It may not use ``secondary_stack`` itself
    (400): one level, like basestacks. A missing stack or image is a 404. The flag is True
    when one of the stacks is protected (the render then needs a signature).
    """
    renders: dict[str, engine.SecondaryRender] = {}
    protected = False
    for op in plan.operations:
        name = op.options.get("secondary_stack") if op.name == "composition" else None
        if not op.enabled or name is None:
            continue
        text, image_ref = op.options.get("secondary_stack_variables"), op.options["secondary_image"]
        key = engine.secondary_render_key(name, text, image_ref)
        if key in renders:
            continue
        stored = catalog().stacks.get(org_id, name)
        if stored is None:
            raise UrlNotFound(f"operation composition: secondary_stack {name} not found")
        stack = parse_stack_json(stored["definition"], name)
        protected = protected or stack.options.get("protected") is True
        basestack = None
        if stack.options.get("basestack"):
            basestack = _load_stack(org_id, stack.options["basestack"])
        row = primary if image_ref is None else catalog().images.find(org_id, image_ref)
        if row is None:
            raise UrlNotFound(
                f"operation composition: secondary_image {image_ref} is not an image of this "
                "organization"
            )
        declared = {*stack.variables, *(basestack.variables if basestack else ())}
        variables = {k: v for k, v in req.variables.items() if k in declared}
        variables.update(parse_qsl(text or "", keep_blank_values=True))
        sub_request = RenderRequest(
            stack=name, hash=row["hash"], output_format="png", variables=variables
        )
        context = RenderContext(image=image_fields(row), headers=dict(request.headers))
        sub_plan = build_plan(stack, sub_request, basestack=basestack, context=context)
        if any(o.enabled and o.options.get("secondary_stack") for o in sub_plan.operations):
            raise StackError(
                f"operation composition: secondary_stack {name} uses secondary_stack itself "
                "(one level only)",
                operation="composition",
                parameter="secondary_stack",
            )
        cached = bool(op.options.get("cache"))
        renders[key] = engine.SecondaryRender(sub_plan, image_ref, name, cached)
    return renders, protected


def _references_protected(org_id: str, plans: list[RenderPlan]) -> bool:
    """Whether a source the plans name by hash, or a secondary stack renders, is a protected
    image: a render that shows it needs a signature as a render of it would."""
    hashes = {ref.hash for p in plans for ref in p.source_references()}
    for ref in hashes:
        row = catalog().images.find(org_id, ref)
        if row is not None and row["protected"]:
            return True
    return False


@bp.route("/<path:path>", methods=["GET", "HEAD"])
def render(path: str) -> Response:
    """Render one image through a stack; see docs/render.md for every header and status."""
    org_name, rest, org_prefix = split_org(path)
    org = catalog().accounts.org_by_name(org_name)
    if org is None:
        raise UrlNotFound(f"organization {org_name} not found")
    req: RenderRequest = parse_render_path(rest, query_v=request.args.get("v"))
    stack = basestack = None
    if not req.is_dynamic:
        stack = _load_stack(org["id"], req.stack)
        if stack.options.get("basestack"):
            basestack = _load_stack(org["id"], stack.options["basestack"])
    alias = alias_name(req.hash) if req.remote is None else None
    # an alias can be repointed: its renders are cached for alias_max_age, not a year
    max_age = max(0, min(settings().alias_max_age, 31536000)) if alias else None
    stack_protected = (
        stack.options.get("protected") is True
        if stack is not None
        else bool(org["options"].get("protect_dynamic_stack"))
    )
    if req.remote is not None:
        domain = settings().render_domain
        own_host = f"{org['name']}.{domain}" if domain else None
        rules = policy(org["options"], stack, basestack)
        url = remote_url(req.remote, rules, own_host)
        if stack_protected:
            check_signature(org, org_prefix)  # an unsigned URL makes no fetch
        image = remote_image(
            catalog(), blobs(), settings(), org["id"], url, redirect_rule(req.remote, rules)
        )
    else:
        image = find_image(org, aliased_hash(org, alias) if alias else req.hash)

    protected = bool(image["protected"]) or stack_protected
    signed_until = check_signature(org, org_prefix) if protected else None
    refuse_font(image)

    preview = req.stack.startswith(PREVIEW_PREFIX)
    # expressions see the image and the request headers, handed over as plain data
    context = RenderContext(image=image_fields(image), headers=dict(request.headers))
    plan = build_plan(stack, req, basestack=basestack, context=context)
    if plan.options.get("source_file"):
        mark_delivery(org["id"], cached=False)  # counted for GET /stats once answered
        return _limit_caching(_original(image), signed_until, preview=preview, max_age=max_age)
    accept = request.headers.get("Accept")
    ext, negotiated = engine.negotiate(
        plan.output_format,
        accept,
        bool(plan.options.get("autoformat")),
        plan.options.get("autoformat.exclude"),
    )
    if negotiated:
        plan = build_plan(stack, req, basestack=basestack, output_format=ext, context=context)
    # jpg.transparency.autoformat: the engine switches a JPEG with visible alpha to the
    # format the Accept header allows; the plan (hence the cache key) carries that format.
    alpha_ext = engine.alpha_fallback(plan.options, accept) if plan.output_format == "jpg" else None
    if alpha_ext is not None:
        plan = replace(plan, options={**plan.options, "jpg.transparency.autoformat": alpha_ext})
    vary = bool(plan.options.get("autoformat")) or alpha_ext is not None
    renders, stacks_protected = _secondary_renders(org["id"], plan, req, image)
    if not protected and (
        stacks_protected
        or _references_protected(org["id"], [plan, *(r.plan for r in renders.values())])
    ):
        # A protected secondary image or stack is shown only through a signed URL too.
        signed_until = check_signature(org, org_prefix)
    # An answer that depends on nothing but the request line, Host, Accept and the catalog
    # may be given again before Flask while the catalog is unchanged (webapp/hitmemo.py).
    # Not a remote image's: its refresh is due by time alone, with no catalog change.
    memo = (
        not (protected or signed_until or preview or plan.request_headers)
        and req.remote is None
        and not any(r.plan.request_headers for r in renders.values())
    )
    return answer(
        org,
        image,
        plan,
        stack=req.stack,
        signed_until=signed_until,
        preview=preview,
        vary=vary,
        renders=renders,
        max_age=max_age,
        memo_org=org_name[:64] if memo else None,
    )


def answer(
    org: dict[str, Any],
    image: dict[str, Any],
    plan: Any,
    *,
    stack: str,
    signed_until: datetime | None = None,
    preview: bool = False,
    vary: bool = False,
    extra_headers: dict[str, str] | None = None,
    renders: Mapping[str, engine.SecondaryRender] | None = None,
    max_age: int | None = None,
    memo_org: str | None = None,
) -> Response:
    """The rendered ``plan`` of ``image``: 304 on a matching ETag, else from the render
    cache (under ``stack``'s name) or rendered, with the caching headers of a render URL.
    ``renders`` are the secondary stacks the plan's compositions render through;
    ``max_age`` (seconds) replaces the year-long caching (alias renders). With
    ``memo_org`` (the organization as the URL names it) an answer the render cache holds
    is remembered for webapp.hitmemo."""
    renders = renders or {}
    # A secondary stack's plan shapes the output too (the stack may be replaced).
    identity = plan.canonical() + "".join(r.plan.canonical() for r in renders.values())
    # keepHash changes an image's dynamic metadata (the areas crops follow) in place,
    # under the same hash: the areas are part of what a render is.
    if image["dynamic_metadata"]:
        identity += "\ndynamic " + canonical_json(image["dynamic_metadata"])
    # The one setting that shapes an output's bytes: an operator's new effort is not
    # answered with AVIFs encoded at the old one (other formats keep their entries).
    if "avif" in (plan.output_format, plan.options.get("jpg.transparency.autoformat")):
        identity += f"\navif effort {settings().avif_effort}"
    # A purge on any node counts a generation in the catalog: folded into the key and
    # ETag, it makes every node's cached copy unreachable (webapp/catalog/purges.py).
    purged = catalog().purges.generation(org["id"], stack, image["hash"])
    if purged:
        identity += "\npurged " + purged
    key = CacheKey.build(
        org_id=org["id"],
        stack=stack,
        image_hash=image["hash"],
        plan=identity,
        ext=plan.output_format,
    )
    read = [*plan.request_headers, *(h for r in renders.values() for h in r.plan.request_headers)]
    headers = {**_headers(key, plan, vary=vary, image=image, read=read), **(extra_headers or {})}
    if max_age is not None:
        headers["Cache-Control"] = f"public, max-age={max_age}"
    if signed_until is not None:
        headers["Cache-Control"] = _cache_control_until(signed_until, max_age)
    if preview:
        headers["Cache-Control"] = NO_STORE
    if _not_modified(key.etag):
        if memo_org is not None and settings().render_cache and not preview:
            _remember_not_modified(key, plan, image, headers, memo_org, org["id"])
        return Response(status=304, headers=headers)
    cache = render_cache() if settings().render_cache and not preview else None
    body = cache.get(key) if cache else None
    mark_delivery(org["id"], cached=body is not None)  # counted for GET /stats once answered
    stored = body is not None
    if body is None:
        sources = renderer.Sources(
            find=lambda ref: catalog().images.find(org["id"], ref),
            read=lambda row: read_original(blobs(), row),
        )
        # composition cache: secondary stacks kept in the render cache (even for _preview)
        renders, prerendered = secondarycache.prerender(
            settings(),
            org["id"],
            image,
            renders,
            cache=render_cache() if settings().render_cache else None,
            read_source=lambda row: read_original(blobs(), row),
            sources=sources,
        )
        rendered = renderer.render_stored(
            settings(),
            plan,
            image,
            read_source=lambda: read_original(blobs(), image),
            sources=sources,
            renders=renders,
            rendered=prerendered,
            source_file=original_file(blobs(), image),
        )
        body = rendered.body
        if cache:
            stored = cache.put(key, body)  # never raises: a failed write is logged
    if stored and memo_org is not None:
        request.environ[hitmemo.HINT] = hitmemo.Hint(key, memo_org, org["id"])
    # The bytes tell the format: jpg.transparency.autoformat may have left JPEG.
    # (A BlurHash is text, told by the plan: no image signature can be read from it.)
    text = plan.output_format == "blur"
    sent = plan.output_format if text else engine.sniff(body) or plan.output_format
    if "Content-Disposition" in headers:
        headers["Content-Disposition"] = _attachment(image, sent)
    return Response(body, status=200, headers=headers, mimetype=engine.FORMATS[sent].mime)


def _remember_not_modified(
    key: CacheKey,
    plan: Any,
    image: dict[str, Any],
    headers: dict[str, str],
    memo_org: str,
    org_id: str,
) -> None:
    """A 304 is remembered for webapp.hitmemo as the 200 would be, when the render cache
    holds the render: with only 200s remembered, clients that revalidate (all of them
    with ``If-None-Match``) went through this route for good once any catalog commit (a
    delivery-count flush, every ``stats_flush_seconds``) had emptied the map (~1.4 ms of
    CPU per 304 instead of ~0.1). The 200's own headers (its type, told by the cached
    bytes, and its attachment name) come from the cached file's first bytes."""
    peeked = render_cache().peek(key)
    if peeked is None:
        return
    prefix, size = peeked
    text = plan.output_format == "blur"
    sent = plan.output_format if text else engine.sniff(prefix) or plan.output_format
    full = {"Content-Type": get_content_type(engine.FORMATS[sent].mime, "utf-8")}
    if "Content-Disposition" in headers:
        full["Content-Disposition"] = _attachment(image, sent)
    request.environ[hitmemo.HINT] = hitmemo.Hint(key, memo_org, org_id, full, size)


def _cache_control_until(until: datetime, max_age: int | None = None) -> str:
    """Caches must not serve a time-limited signed URL after its ``until`` (nor past
    ``max_age`` seconds when given)."""
    seconds = int((until - datetime.now(UTC)).total_seconds())
    cap = 31536000 if max_age is None else max_age
    return f"public, max-age={max(0, min(seconds, cap))}"


def _limit_caching(
    response: Response, until: datetime | None, *, preview: bool, max_age: int | None = None
) -> Response:
    if max_age is not None:
        response.headers["Cache-Control"] = f"public, max-age={max_age}"
    if until is not None:
        response.headers["Cache-Control"] = _cache_control_until(until, max_age)
    if preview:
        response.headers["Cache-Control"] = NO_STORE
    return response


def _headers(
    key: CacheKey, plan: Any, *, vary: bool, image: dict[str, Any], read: list[str]
) -> dict[str, str]:
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": key.etag}
    # Accept for autoformat, and every header an expression read to build this plan (and
    # the plans of its secondary stacks)
    varies = (["Accept"] if vary else []) + [header_name(h) for h in read]
    if varies:
        headers["Vary"] = ", ".join(dict.fromkeys(varies))
    if plan.options.get("content_disposition") == "attachment":
        headers["Content-Disposition"] = _attachment(image, plan.output_format)
    return headers


def _attachment(image: dict[str, Any], ext: str) -> str:
    return f'attachment; filename="{image["hash"][:12]}.{ext}"'


def _not_modified(etag: str) -> bool:
    """``If-None-Match`` matches ``etag``; weak comparison, as RFC 9110 asks for GET/HEAD."""
    return request.if_none_match.contains_weak(etag.strip('"'))


def _original(image: dict[str, Any]) -> Response:
    """The source file's bytes, as the ``source_file`` stack option asks (304 if unchanged).

    Shown inline (it is a render URL, made for ``<img>``), but sandboxed: an SVG with
    ``<script>`` opened directly runs nothing (``ORIGINAL_CSP``).
    """
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "ETag": f'"{image["blob_key"][:32]}"',
        "Content-Security-Policy": ORIGINAL_CSP,
    }
    if _not_modified(headers["ETag"]):
        return Response(status=304, headers=headers)
    return Response(
        read_original(blobs(), image), status=200, mimetype=image["mimetype"], headers=headers
    )
