"""Building render plans: precedence, dynamic stacks, basestacks, dpr, defaults."""

from __future__ import annotations

import pytest

from stacks.errors import StackError, UrlNotFound
from stacks.plan import RenderPlan
from stacks.resolve import build_plan
from stacks.stack import parse_stack_json
from stacks.url import parse_render_path

MYSTACK = parse_stack_json(
    {
        "operations": [
            {"name": "rotate", "options": {"angle": 45}},
            {"name": "resize", "options": {"width": 100, "height": 100}},
        ],
        "options": {"jpg.quality": 77},
        "variables": {"w": 1},
    },
    "mystack",
)


def plan(path: str, stack=None, **kwargs) -> RenderPlan:
    return build_plan(stack, parse_render_path(path), **kwargs)


def widths(result: RenderPlan) -> list[int]:
    return [op.options["width"] for op in result.operations]


def test_php_dynamic_override_of_single_resize() -> None:
    result = plan("dynamic/resize-width-100--o-autoformat-true/resize-width-200/abcdef.jpg")
    assert [op.name for op in result.operations] == ["resize"]
    assert widths(result) == [200]
    assert result.options["autoformat"] is True


def test_php_dynamic_override_applies_to_all_of_that_name() -> None:
    result = plan("dynamic/resize-width-100--resize-width-200/resize-width-300/abcdef.jpg")
    assert widths(result) == [300, 300]


def test_php_later_quality_wins() -> None:
    result = plan("mystack/options-jpg.quality-90/options-jpg.quality-40/abcdef.jpg", MYSTACK)
    assert result.options["jpg.quality"] == 40


def test_named_stack_defaults_and_overrides() -> None:
    result = plan("mystack/resize-width-200--v-w-2/abcdef/slug.png", MYSTACK)
    rotate, resize = result.operations
    assert dict(rotate.options) == {
        "angle": 45,
        "background_color": "FFFFFF",
        "background_opacity": 0,
    }
    assert dict(resize.options) == {
        "width": 200,
        "height": 100,
        "mode": "box",
        "upscale": True,
        "upscale_dpr": True,
        "sharpen": False,
    }
    assert rotate.enabled and resize.enabled
    assert result.options["jpg.quality"] == 77
    assert result.options["webp.quality"] == 80
    # URL text over a number literal takes the literal's type (stack "w": 1)
    assert result.variables == {"w": 2}
    assert result.output_format == "png"


def test_override_of_an_operation_not_in_the_stack_is_ignored() -> None:
    result = plan("mystack/crop-width-5-height-5--grayscale/abcdef.jpg", MYSTACK)
    assert [op.name for op in result.operations] == ["rotate", "resize"]


def test_enabled_can_be_switched_from_the_url() -> None:
    result = plan("mystack/rotate-enabled-false/abcdef.jpg", MYSTACK)
    assert [op.enabled for op in result.operations] == [False, True]
    assert "enabled" not in result.operations[0].options


def test_required_checked_after_overrides() -> None:
    assert widths(plan("dynamic/crop-width-5/crop-height-6/abcdef.jpg")) == [5]
    with pytest.raises(StackError) as error:
        plan("dynamic/crop-width-5/abcdef.jpg")
    assert (error.value.operation, error.value.parameter) == ("crop", "height")
    with pytest.raises(StackError, match="at least one of width, height"):
        plan("dynamic/resize-mode-fill/abcdef.jpg")


def test_basestack_operations_first_and_options_below_the_stack() -> None:
    base = parse_stack_json(
        {
            "operations": [{"name": "grayscale"}, {"name": "resize", "options": {"width": 9}}],
            "options": {"jpg.quality": 10, "webp.quality": 20},
            "variables": {"w": 0, "b": 1},
        },
        "base",
    )
    result = plan("mystack/resize-width-50/abcdef.jpg", MYSTACK, basestack=base)
    assert [op.name for op in result.operations] == ["grayscale", "resize", "rotate", "resize"]
    resizes = [op for op in result.operations if op.name == "resize"]
    assert [op.options["width"] for op in resizes] == [50, 50]  # basestack ops too
    assert (result.options["jpg.quality"], result.options["webp.quality"]) == (77, 20)
    assert result.variables == {"w": 1, "b": 1}


def test_basestack_own_basestack_is_not_followed() -> None:
    base = parse_stack_json({"options": {"basestack": "other"}}, "base")
    stack = parse_stack_json({"options": {"basestack": "base"}}, "s")
    assert plan("s/abcdef.jpg", stack, basestack=base).options["basestack"] == "base"
    assert (
        plan("s/abcdef.jpg", parse_stack_json({}, "s"), basestack=base).options["basestack"] is None
    )


def test_dpr_needs_a_resize() -> None:
    with pytest.raises(StackError, match="dpr needs a resize operation") as error:
        plan("dynamic/grayscale--o-dpr-2/abcdef.jpg")
    assert error.value.status == 400
    with pytest.raises(StackError, match="dpr needs a resize"):
        plan("mystack/resize-enabled-false--o-dpr-2/abcdef.jpg", MYSTACK)
    assert plan("dynamic/resize-width-5--o-dpr-2/abcdef.jpg").options["dpr"] == 2
    assert plan("dynamic/grayscale--o-dpr-1/abcdef.jpg").options["dpr"] == 1


def test_dpr_resize_in_basestack_does_not_count() -> None:
    base = parse_stack_json({"operations": [{"name": "resize", "options": {"width": 9}}]}, "b")
    stack = parse_stack_json({"operations": [{"name": "grayscale"}]}, "s")
    with pytest.raises(StackError, match="dpr needs a resize"):
        plan("s/o-dpr-2/abcdef.jpg", stack, basestack=base)


@pytest.mark.parametrize(
    ("path", "jpg", "webp"),
    [
        ("dynamic/resize-width-5/abcdef.jpg", 80, 80),
        ("dynamic/resize-width-5--o-dpr-1.5/abcdef.jpg", 80, 80),
        ("dynamic/resize-width-5--o-dpr-2/abcdef.jpg", 70, 70),
        ("dynamic/resize-width-5--o-dpr-2-jpg.quality-90/abcdef.jpg", 90, 70),
    ],
)
def test_high_dpr_lowers_default_quality(path: str, jpg: int, webp: int) -> None:
    result = plan(path)
    assert (result.options["jpg.quality"], result.options["webp.quality"]) == (jpg, webp)


def test_high_dpr_keeps_stack_given_quality() -> None:
    result = plan("mystack/o-dpr-3/abcdef.jpg", MYSTACK)
    assert (result.options["jpg.quality"], result.options["webp.quality"]) == (77, 70)


def test_named_stack_must_be_given() -> None:
    with pytest.raises(UrlNotFound):
        plan("mystack/abcdef.jpg")


def test_output_format_negotiated_by_caller() -> None:
    assert plan("mystack/abcdef.jpg", MYSTACK, output_format="webp").output_format == "webp"
    with pytest.raises(StackError):
        plan("mystack/abcdef.jpg", MYSTACK, output_format="bmp")


def test_source_file_stack_plan() -> None:
    stack = parse_stack_json({"options": {"source_file": True}}, "orig")
    result = plan("orig/abcdef.jpg", stack)
    assert result.operations == () and result.options["source_file"] is True
    with pytest.raises(StackError, match="source_file"):
        plan("orig/abcdef.jpg", stack, basestack=parse_stack_json([{"name": "grayscale"}], "b"))


def test_plans_are_deterministic_cache_keys() -> None:
    first = plan("mystack/o-dpr-2/resize-width-5/abcdef.jpg", MYSTACK).canonical()
    second = plan("mystack/resize-width-5--o-dpr-2/abcdef/other-slug.jpg", MYSTACK).canonical()
    assert first == second
    assert first != plan("mystack/resize-width-6/abcdef.jpg", MYSTACK).canonical()


def test_every_plan_option_is_present() -> None:
    from stacks.options import STACK_OPTIONS

    assert set(plan("dynamic/noop/abcdef.jpg").options) == set(STACK_OPTIONS)
