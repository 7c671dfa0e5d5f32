"""Any input gives a plan or a StackError, never another exception; stacks stays pure."""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

from stacks.errors import StackError
from stacks.resolve import build_plan
from stacks.stack import parse_stack_json
from stacks.url import parse_render_path

ALPHABET = "abcdef0123456789-_./%[]$ ٣\x00ZXresizcopwhtgnlumv"
PIECES = [
    "resize",
    "crop",
    "width",
    "height",
    "-",
    "--",
    "/",
    "o",
    "v",
    "dpr",
    "1",
    "0",
    "abcdef",
    ".jpg",
    "..",
    "%5B",
    "]",
    "mode",
    "ratio",
    "anchor",
    "auto",
    "1e3",
    "nan",
]


def _random_path(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 40)))
    return (
        "dynamic/"
        + "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12)))
        + (rng.choice(["/abcdef.jpg", ".png", "/abcdef/x.webp", ""]))
    )


def test_random_render_paths_only_raise_stack_errors() -> None:
    rng = random.Random(1234)
    parsed = 0
    for _ in range(5000):
        path = _random_path(rng)
        try:
            request = parse_render_path(path)
            if request.is_dynamic:
                build_plan(None, request)
            parsed += 1
        except StackError:
            pass
    assert parsed > 0  # the generator does reach valid URLs too


def test_random_stack_bodies_only_raise_stack_errors() -> None:
    rng = random.Random(99)
    values = [None, True, 0, -1, 1.5, 10001, "x", "FFFFFF", [], {}, float("nan"), "auto"]
    names = ["resize", "crop", "rotate", "blur", "text", "nosuch", 5, None]
    params = ["width", "height", "angle", "mode", "anchor", "sigma", "enabled", "x"]
    for _ in range(3000):
        body = {
            "operations": [
                {
                    "name": rng.choice(names),
                    "options": {rng.choice(params): rng.choice(values) for _ in range(3)},
                }
                for _ in range(rng.randint(0, 3))
            ],
            "options": {rng.choice(["dpr", "jpg.quality", "autoformat", "x"]): rng.choice(values)},
        }
        try:
            stack = parse_stack_json(json.loads(json.dumps(body)), "s")
            build_plan(stack, parse_render_path("s/abcdef.jpg"))
        except StackError:
            pass


def test_stacks_package_imports_neither_flask_nor_pyvips() -> None:
    for path in (Path(__file__).parents[2] / "stacks").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"flask", "pyvips", "werkzeug"}, path
