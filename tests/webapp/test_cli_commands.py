"""The operator commands as a user runs them (subprocesses of this checkout's CLI):
``--help``, the refusal of a path that is no data directory, setting errors, ``import``,
``keys create`` and ``orgs list``."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

from tests.realserver import REPO
from tests.webapp.images import jpeg, png
from tests.webapp.test_cli_users import assert_one_line_failure, create_user, cropstack
from webapp import create_app
from webapp.cli import build_parser


def subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return list(action.choices)


def test_help_lists_every_command_in_plain_text() -> None:
    result = cropstack("--help")
    assert result.returncode == 0
    names = subcommands()
    assert {"serve", "gc", "import", "users", "keys", "orgs", "settings-doc"} <= set(names)
    for name in names:
        assert f"\n    {name}" in result.stdout, name
    assert "``" not in result.stdout and ":func:" not in result.stdout
    for name in names:
        sub = cropstack(name, "--help")
        assert sub.returncode == 0 and "``" not in sub.stdout, name


def test_serve_and_gc_refuse_a_path_that_is_no_data_directory(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    for argv in (["serve"], ["gc"], ["orgs", "list"], ["keys", "create", "--user", "x"]):
        result = cropstack(*argv, "--data-dir", str(missing))
        assert_one_line_failure(result, contains=str(missing))
        assert "--init" in result.stderr and "does not exist" in result.stderr
        assert not missing.exists()
    other = tmp_path / "home"
    other.mkdir()
    (other / "notes.txt").write_text("not a data dir")
    for argv in (["serve"], ["gc"]):
        result = cropstack(*argv, "--data-dir", str(other))
        assert_one_line_failure(result, contains="not a cropstack data directory")
        assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_bad_settings_name_the_setting_and_what_is_allowed(tmp_path: Path) -> None:
    cases = [
        ("CROPSTACK_RENDER_CONCURRENCY", "zero", "render_concurrency", "a whole number"),
        ("CROPSTACK_SIGNUP", "maybe", "signup", "true or false"),
        ("CROPSTACK_RENDER_TIMEOUT", "soon", "render_timeout", "a number"),
    ]
    for variable, value, name, allowed in cases:
        result = cropstack(
            "serve", "--init", "--data-dir", str(tmp_path / "d"), env={variable: value}
        )
        assert_one_line_failure(result, contains=name)
        assert variable in result.stderr and allowed in result.stderr
        assert "invalid literal" not in result.stderr and "Traceback" not in result.stderr


def test_keys_create_and_orgs_list(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert create_user(data, "me@example.org", "acme").returncode == 0
    assert create_user(data, "you@example.org", "globex").returncode == 0
    made = cropstack("keys", "create", "--user", "ME@example.org", "--comment", "ci",
                     "--data-dir", str(data))  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert set(key) == {"id", "api_key", "comment", "created"} and key["comment"] == "ci"
    client = create_app({"data_dir": str(data)}).test_client()
    me = client.get("/user", headers={"Api-Key": key["api_key"]})
    assert me.status_code == 200 and me.get_json()["email"] == "me@example.org"
    assert_one_line_failure(
        cropstack("keys", "create", "--user", "nobody@example.org", "--data-dir", str(data)),
        contains="no user nobody@example.org",
    )
    listed = cropstack("orgs", "list", "--data-dir", str(data))
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [row["name"] for row in rows] == ["acme", "globex"]
    assert all(row["members"] == 1 and row["images"] == 0 for row in rows)


def _folder(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "one.png").write_bytes(png(20, 10, seed=1))
    (root / "a" / "two.jpg").write_bytes(jpeg(30, 20))
    (root / "a" / "b" / "three.png").write_bytes(png(12, 12, seed=3))
    (root / "a" / "b" / "readme.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(png(8, 8, seed=4))


def test_import_a_folder_then_resume(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert create_user(data, "me@example.org", "acme").returncode == 0
    folder = tmp_path / "photos"
    _folder(folder)
    argv = ("import", str(folder), "--organization", "acme", "--data-dir", str(data))
    first = cropstack(*argv)
    assert first.returncode == 1, first.stderr  # one file failed
    assert first.stdout.startswith("imported 3, skipped 0 (already there), failed 1;")
    assert "a/b/readme.txt" in first.stderr
    # Not a terminal: plain progress lines, never a bar's carriage returns.
    assert "\r" not in first.stderr
    assert "import: 4/4 files" in first.stderr

    again = cropstack(*argv)
    assert again.stdout.startswith("imported 0, skipped 3 (already there), failed 1;")

    client = create_app({"data_dir": str(data)}).test_client()
    key = json.loads(cropstack("keys", "create", "--user", "me@example.org",
                               "--data-dir", str(data)).stdout)["api_key"]  # fmt: skip
    listing = client.get("/sourceimages/acme", headers={"Api-Key": key}).get_json()
    assert sorted(item["name"] for item in listing["items"]) == ["one.png", "three.png", "two.jpg"]
    for item in listing["items"]:
        render = client.get(f"/acme/dynamic/resize-width-8/{item['hash']}.png")
        assert render.status_code == 200 and render.mimetype == "image/png"
    assert_one_line_failure(
        cropstack("import", str(folder), "--organization", "nope", "--data-dir", str(data)),
        contains="organization nope does not exist",
    )


def test_import_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert create_user(data, "me@example.org", "acme").returncode == 0
    folder = tmp_path / "photos"
    _folder(folder)
    controller, terminal = pty.openpty()
    # A terminal 100 columns wide, as a real one has a size.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CROPSTACK_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "webapp.cli", "import", str(folder), "--organization", "acme",
         "--data-dir", str(data)],
        cwd=REPO, env=environ, stdout=subprocess.PIPE, stderr=terminal, text=True,
    )  # fmt: skip
    os.close(terminal)
    stdout, _ = process.communicate(timeout=60)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert stdout.startswith("imported 3")
    text = shown.decode(errors="replace")
    assert "4/4" in text and "file" in text and "\r" in text  # tqdm's bar, redrawn in place
