"""docs/stacks.md must document every operation and option of the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.operations import OPERATIONS, implemented_operations
from stacks.options import STACK_OPTIONS
from stacks.reference import markdown_reference

DOC = (Path(__file__).parents[2] / "docs" / "stacks.md").read_text()


def test_generated_reference_is_up_to_date() -> None:
    assert markdown_reference() in DOC, "run: python -m stacks.reference docs/stacks.md"


@pytest.mark.parametrize("name", [spec.name for spec in implemented_operations()])
def test_every_implemented_operation_is_documented(name: str) -> None:
    assert f"#### `{name}`" in DOC
    for param in OPERATIONS[name].params:
        assert f"| `{param.name}` |" in DOC


@pytest.mark.parametrize("name", list(STACK_OPTIONS))
def test_every_option_is_documented(name: str) -> None:
    assert f"| `{name}` |" in DOC


@pytest.mark.parametrize("name", [s.name for s in OPERATIONS.values() if not s.implemented])
def test_not_implemented_operations_are_listed(name: str) -> None:
    assert f"`{name}`" in DOC
