"""The plan's cache identity: what changes the output, and only that."""

from __future__ import annotations

import json

from stacks.plan import Operation, RenderPlan


def _plan(variables: dict, width: object = 100) -> RenderPlan:
    return RenderPlan(
        operations=(Operation("resize", {"width": width, "height": None}),),
        options={"jpg.quality": 80},
        output_format="jpg",
        variables=variables,
    )


def test_unreferenced_variables_are_not_part_of_the_identity():
    plain = _plan({})
    assert plain.referenced_variables() == frozenset()
    assert _plan({"utm": "x", "n": 3}).canonical() == plain.canonical()
    assert json.loads(plain.canonical())["variables"] == {}


def test_referenced_variables_are_kept_with_their_values():
    # No plan carries an expression today (stacks refuses them); when one does, the
    # variables it names must stay in the key, the others must not.
    plan = _plan({"w": 50, "junk": "a"}, width="[$w * 2]")
    assert plan.referenced_variables() == frozenset({"w"})
    assert json.loads(plan.canonical())["variables"] == {"w": 50}
    other = _plan({"w": 60, "junk": "a"}, width="[$w * 2]")
    assert other.canonical() != plan.canonical()
    assert _plan({"w": 50, "junk": "b"}, width="[$w * 2]").canonical() == plan.canonical()
