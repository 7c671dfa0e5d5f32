"""docs/settings.md documents every setting, and is what the generator produces."""

from __future__ import annotations

from pathlib import Path

import pytest

from webapp.settings import SETTINGS, env_var, settings_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_documented(setting):
    rows = [line for line in DOC.read_text().splitlines() if line.startswith(f"| `{setting.name}`")]
    assert len(rows) == 1, f"{setting.name} missing from docs/settings.md"
    assert f"`{env_var(setting)}`" in rows[0]
    assert setting.help.replace("|", "\\|") in rows[0]


def test_settings_doc_is_up_to_date():
    assert DOC.read_text() == settings_markdown(), (
        "docs/settings.md is stale: run python -m webapp.cli settings-doc > docs/settings.md"
    )
