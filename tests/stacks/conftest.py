"""Shared fixtures: the rokka.js recordings copied from conformance/ (MIT, see LICENSE)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

RECORDINGS = Path(__file__).parent / "recordings"


def load_recording(name: str) -> list[dict[str, Any]]:
    """One recording file: a list of ``{method, path, body, status, response}``."""
    return json.loads((RECORDINGS / name).read_text())


@pytest.fixture
def recording() -> Callable[[str], list[dict[str, Any]]]:
    return load_recording
