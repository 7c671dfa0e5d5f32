"""Merging a stored stack, its basestack and render-URL overrides into a ``RenderPlan``.

Order of precedence, lowest first: table defaults, basestack, stack, URL, then matching
stack expressions. Operation overrides from the URL apply to every operation of that
name, basestack ones included. Every expression is evaluated here, so the plan holds
only plain values: its ``canonical()`` form (cache key, ETag) is that of the evaluated
result, and engine budgets apply to it as to a literal URL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stacks import options as stack_options
from stacks.errors import StackError, UrlNotFound
from stacks.evaluation import (
    RenderContext,
    Variables,
    coerce_override,
    is_variable_expression,
    new_scope,
)
from stacks.expression import Scope, evaluate, truthy
from stacks.operations import MAX_OPERATIONS, OPERATIONS, OperationItem
from stacks.plan import Operation, RenderPlan
from stacks.stack import StackDefinition
from stacks.url import OUTPUT_EXTENSIONS, RenderRequest

# rokka lowers these defaults by 10 when dpr > 1.5 (only when the option was not given):
# at high density the artefacts are smaller than a CSS pixel.
HIGH_DPR = 1.5
HIGH_DPR_QUALITY_DROP = 10
_DPR_SENSITIVE_QUALITIES = ("jpg.quality", "webp.quality")
OPTIM_QUALITY_DEFAULT = 5
OPTIM_QUALITY_STEP = 3
LOSSY_WEBP_MAX_QUALITY = 99


def build_plan(
    stack: StackDefinition | None,
    request: RenderRequest,
    *,
    basestack: StackDefinition | None = None,
    output_format: str | None = None,
    context: RenderContext | None = None,
) -> RenderPlan:
    """The validated plan for ``request`` against ``stack`` (``None`` for ``dynamic``).

    ``basestack`` is the stack named by ``stack.options["basestack"]``, loaded by the
    caller; its operations run first, its options and variables sit under the stack's
    (its own ``basestack`` option is not followed). ``output_format`` is the negotiated
    format (autoformat); default: the URL extension. ``context``: the image and request
    data expressions read (default: empty, every ``image.*`` / header is null).
    Raises StackError (400) for missing required parameters, dpr without resize, or a
    named stack that was not given (UrlNotFound, 404).
    """
    if request.is_dynamic:
        # A dynamic URL has no stored stack, hence no basestack either.
        own, layers = request.operations, []
    elif stack is None:
        raise UrlNotFound(f"stack {request.stack} not found")
    else:
        own, layers = stack.operations, [stack]
        if basestack is not None:
            layers.insert(0, basestack)
    base_ops = basestack.operations if len(layers) == 2 else ()
    if len(base_ops) + len(own) > MAX_OPERATIONS:
        raise StackError(f"a plan may have at most {MAX_OPERATIONS} operations")

    given = _merge([_options_of(layer, layer is layers[-1]) for layer in layers])
    given = {**given, **request.options}
    options = _complete(given)
    variables = Variables(_variable_definitions(layers, request.variables))
    scope, headers = new_scope(context or RenderContext(), options, variables)
    for layer in layers:
        for expression in layer.expressions:
            if not truthy(evaluate(expression.expression, scope)):
                continue
            if expression.options is not None:
                given.update(expression.options)
                options = _complete(given)
                scope.roots = {**scope.roots, "options": options}
                variables.override({})  # computed variables may have read the old options
            if expression.variables is not None:
                variables.override(expression.variables)

    own_plan = _operations(own, request, scope)
    if options["dpr"] != 1 and not any(op.name == "resize" and op.enabled for op in own_plan):
        # rokka: the stack itself needs the resize, a basestack's resize does not count.
        raise StackError("dpr needs a resize operation", parameter="dpr")
    operations = _operations(base_ops, request, scope) + own_plan
    if options["source_file"] and operations:
        raise StackError("source_file needs a stack without operations", parameter="source_file")

    fmt = output_format if output_format is not None else request.output_format
    if fmt not in OUTPUT_EXTENSIONS.values():
        raise StackError(f"unsupported output format {fmt!r}")
    exclude = str(options["autoformat.exclude"] or "").split(",")
    if fmt == "webp" and request.output_format == "png":
        # rokka's autoformat: a PNG asked for comes back as lossless WebP unless the stack
        # sets webp.quality, or always when it excludes lossless_to_lossy (100 = lossless).
        if "webp.quality" not in given or "lossless_to_lossy" in exclude:
            options["webp.quality"] = 100
    elif fmt == "webp" and request.output_format == "jpg" and "lossy_to_lossless" in exclude:
        # A JPEG asked for stays lossy: webp.quality 100 would be lossless WebP.
        options["webp.quality"] = min(options["webp.quality"], LOSSY_WEBP_MAX_QUALITY)
    elif fmt == "jxl" and request.output_format == "png":
        # JPEG XL, like WebP: a PNG asked for is lossless unless the stack sets jxl.quality
        if "jxl.quality" not in given or "lossless_to_lossy" in exclude:
            options["jxl.quality"] = 100
    elif fmt == "jxl" and request.output_format == "jpg" and "lossy_to_lossless" in exclude:
        options["jxl.quality"] = min(options["jxl.quality"], LOSSY_WEBP_MAX_QUALITY)
    return RenderPlan(
        operations=operations,
        options=options,
        output_format=fmt,
        variables=variables.known(),
        request_headers=tuple(sorted(headers.read)),
    )


def _complete(given: Mapping[str, Any]) -> dict[str, Any]:
    options = stack_options.complete_options(given)
    _default_qualities(options, given)
    if "optim.immediate" not in given and "pngquant.quality" in given:
        # Asking for a palette quality asks for the optimisation that applies it.
        options["optim.immediate"] = True
    return options


def _variable_definitions(
    layers: Iterable[StackDefinition], overrides: Mapping[str, Any]
) -> dict[str, tuple[bool, Any]]:
    """Stack variables (basestack first) with the URL's on top, as (is_expression, value).

    URL values are literals; text over a number or boolean literal takes its type.
    """
    definitions: dict[str, tuple[bool, Any]] = {}
    for layer in layers:
        for name, value in layer.variables.items():
            definitions[name] = (is_variable_expression(value), value)
    for name, value in overrides.items():
        declared = definitions.get(name, (True, None))
        definitions[name] = (False, coerce_override(None if declared[0] else declared[1], value))
    return definitions


def _default_qualities(options: dict[str, Any], given: Mapping[str, Any]) -> None:
    """JPEG/WebP qualities the stack did not set: from ``optim.quality``, then the dpr drop.

    ``optim.quality`` (0-10, default 5) moves the default 80 by ``OPTIM_QUALITY_STEP`` per
    level (0 -> 65, 10 -> 95); ``optim.disable_all`` switches that off. rokka uses it for
    an adaptive second pass; cropstack has one render, so the level sets the quality.
    """
    for name in _DPR_SENSITIVE_QUALITIES:
        if name in given:
            continue
        if not options["optim.disable_all"]:
            options[name] += (options["optim.quality"] - OPTIM_QUALITY_DEFAULT) * OPTIM_QUALITY_STEP
        if options["dpr"] > HIGH_DPR:
            options[name] -= HIGH_DPR_QUALITY_DROP


def _operations(
    items: Iterable[OperationItem], request: RenderRequest, scope: Scope
) -> tuple[Operation, ...]:
    plan = []
    for item in items:
        spec = OPERATIONS[item.name]
        given = dict(item.options)
        expressions = item.effective_expressions()
        for key, value in request.overrides.get(item.name, {}).items():
            given[key] = value
            expressions.pop(key, None)
        expressions.update(request.expression_overrides.get(item.name, {}))
        for key, text in expressions.items():
            if isinstance(text, Mapping):
                # an object of expressions (secondary_stack_variables): one per variable
                value: Any = {name: evaluate(each, scope) for name, each in text.items()}
                text = ", ".join(f"{name}: {each}" for name, each in text.items())
            else:
                value = evaluate(text, scope)
            given[key] = spec.param(key).from_value(value, operation=item.name, expression=text)
        full = spec.complete(given)
        enabled = full.pop("enabled")
        plan.append(Operation(item.name, full, enabled))
    return tuple(plan)


def _options_of(layer: StackDefinition, is_main: bool) -> Mapping[str, Any]:
    """A basestack's own ``basestack`` option is dropped: chains are one level deep."""
    if is_main:
        return layer.options
    return {k: v for k, v in layer.options.items() if k != "basestack"}


def _merge(layers: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    return merged
