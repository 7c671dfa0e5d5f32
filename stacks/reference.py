"""The operation and stack option reference tables of docs/stacks.md, generated from the
registry so the docs cannot drift (tests/stacks/test_docs.py compares them).

Regenerate with ``python -m stacks.reference docs/stacks.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from stacks.operations import OPERATIONS, implemented_operations
from stacks.options import REFUSED_OPTIONS, STACK_OPTIONS, URL_ALIASES
from stacks.values import Kind, Param

BEGIN = "<!-- BEGIN GENERATED REFERENCE (python -m stacks.reference docs/stacks.md) -->"
END = "<!-- END GENERATED REFERENCE -->"


def _default(param: Param) -> str:
    if not param.has_default:
        return "—"
    if param.default is None:
        return "null"
    if isinstance(param.default, bool):
        return "true" if param.default else "false"
    return f"`{param.default}`"


def _row(param: Param, extra: str = "") -> str:
    accepts = param.expected().replace("|", "\\|")
    kind = "array" if param.kind is Kind.OBJECT_LIST else param.kind.value
    return f"| `{param.name}` | {kind} | {_default(param)} | {accepts} |{extra}"


def markdown_reference() -> str:
    """The generated block: one table per implemented operation, then the options table."""
    lines = ["### Operations (implemented)", ""]
    for spec in implemented_operations():
        lines.append(f"#### `{spec.name}`")
        lines.append("")
        lines.append(spec.description)
        if spec.required:
            lines.append(f"Required: {', '.join(spec.required)}.")
        if spec.one_of:
            lines.append(f"At least one of: {', '.join(spec.one_of)}.")
        lines += ["", "| parameter | type | default | accepts |", "| --- | --- | --- | --- |"]
        lines += [_row(param) for param in spec.params]
        lines.append("")
    later = [spec for spec in OPERATIONS.values() if not spec.implemented]
    lines.append(
        "Known rokka operations that are **not implemented** (400 "
        '"operation X is not implemented[: why]"): '
        + ", ".join(f"`{s.name}`" + (f" ({s.why})" if s.why else "") for s in later)
        + "."
    )
    lines += ["", "### Stack options", ""]
    lines += [
        "| option | type | default | accepts | in URLs |",
        "| --- | --- | --- | --- | --- |",
    ]
    aliases = {target: alias for alias, target in URL_ALIASES.items()}
    for param in STACK_OPTIONS.values():
        url = "yes" if param.url_settable else "**no** (stack only)"
        if param.name in aliases:
            url += f", alias `{aliases[param.name]}`"
        lines.append(_row(param, f" {url} |"))
    lines += [
        "",
        'Stack options of rokka that cropstack **refuses** (400 "stack option X is not'
        ' supported: reason", in a stack or a render URL; not in `GET /stackoptions`):',
        "",
        "| option | why |",
        "| --- | --- |",
    ]
    lines += [f"| `{name}` | {why} |" for name, why in REFUSED_OPTIONS.items()]
    return "\n".join([BEGIN, "", *lines, "", END])


def splice(document: str) -> str:
    """``document`` with its generated block replaced by the current reference."""
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + markdown_reference() + tail


if __name__ == "__main__":
    path = Path(sys.argv[1])
    path.write_text(splice(path.read_text()))
