"""Fixtures of the stacks tests: the recorded rokka.js traffic (shared/conformance)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import load_recording

__all__ = ["load_recording", "recording"]


@pytest.fixture
def recording() -> Callable[[str], list[dict[str, Any]]]:
    """``load_recording`` as a fixture."""
    return load_recording
