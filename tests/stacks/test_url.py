"""The render URL grammar (rokka-api.md §1) and hostile paths (bad-inputs.md rows 18-24)."""

from __future__ import annotations

import pytest

from stacks.errors import (
    ExpressionsNotSupported,
    NotImplementedOperation,
    StackError,
    UnknownOperation,
    UrlNotFound,
)
from stacks.operations import OperationItem
from stacks.url import parse_render_path


def test_named_stack_with_every_kind_of_segment() -> None:
    request = parse_render_path("mystack/resize-width-200--o-dpr-2/v-w-300/abc123def/seo-slug.jpg")
    assert request.stack == "mystack" and not request.is_dynamic
    assert request.hash == "abc123def" and request.slug == "seo-slug"
    assert request.output_format == "jpg"
    assert request.operations == ()
    assert request.overrides == {"resize": {"width": 200}}
    assert request.options == {"dpr": 2}
    assert request.variables == {"w": "300"}


def test_dynamic_first_segment_defines_operations_in_order() -> None:
    request = parse_render_path(
        "dynamic/crop-width-16-height-9-mode-ratio-area-landscape_16_9--resize-width-50/abcdef.jpg"
    )
    assert request.is_dynamic
    assert request.operations == (
        OperationItem(
            "crop", {"width": 16, "height": 9, "mode": "ratio", "area": "landscape_16_9"}
        ),
        OperationItem("resize", {"width": 50}),
    )
    assert request.overrides == {}


def test_leading_slash_and_plain_hash() -> None:
    request = parse_render_path("/mystack/0123456789abcdef0123456789abcdef01234567.png")
    assert request.hash == "0123456789abcdef0123456789abcdef01234567"
    assert (request.slug, request.output_format) == (None, "png")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # PHP StackUriTest / UriHelperTest cases (rokka-api.md §1.2)
        ("s/options-jpg.quality-90/options-jpg.quality-40/abcdef.jpg", {"jpg.quality": 40}),
        ("s/o-dpr-2/options-dpr-3/abcdef.jpg", {"dpr": 3}),
        ("s/o-dpr-2--o-dpr-3/abcdef.jpg", {"dpr": 3}),
        ("s/o-dpr-2-dpr-4/abcdef.jpg", {"dpr": 4}),
        ("s/o-af-1/abcdef.jpg", {"autoformat": True}),
    ],
)
def test_later_options_win(path: str, expected: dict) -> None:
    assert parse_render_path(path).options == expected


def test_short_and_long_item_names_are_equivalent() -> None:
    short = parse_render_path("s/o-dpr-2/v-w-300/abcdef.jpg")
    long = parse_render_path("s/options-dpr-2/variables-w-300/abcdef.jpg")
    assert (short.options, short.variables) == (long.options, long.variables)


def test_empty_segments_and_items_are_ignored() -> None:
    request = parse_render_path("s//--options-dpr-2--//resize-width-5----/abcdef.jpg")
    assert request.options == {"dpr": 2}
    assert request.overrides == {"resize": {"width": 5}}


def test_operation_without_options() -> None:
    request = parse_render_path("dynamic/noop/abcdef.png")
    assert request.operations == (OperationItem("noop", {}),)
    request = parse_render_path("dynamic/circlemask--resize-width-150/abcdef.png")
    assert [op.name for op in request.operations] == ["circlemask", "resize"]


def test_dynamic_later_segments_override_by_name() -> None:
    request = parse_render_path(
        "dynamic/resize-width-100--o-autoformat-true/resize-width-200/a1b2c3.jpg"
    )
    assert request.operations == (OperationItem("resize", {"width": 100}),)
    assert request.overrides == {"resize": {"width": 200}}
    assert request.options == {"autoformat": True}


def test_dynamic_first_segment_is_the_first_non_empty_one() -> None:
    request = parse_render_path("dynamic//grayscale/abcdef.jpg")
    assert request.operations == (OperationItem("grayscale", {}),)


def test_dynamic_with_only_options_has_no_operations() -> None:
    request = parse_render_path("dynamic/o-jpg.quality-50/abcdef.jpg")
    assert request.operations == () and request.options == {"jpg.quality": 50}


def test_query_v_wins_over_path_variables_and_keeps_json_types() -> None:
    request = parse_render_path(
        "s/v-w-300-h-20/abcdef.jpg", query_v='{"w": 500, "text": "Some & Some", "b": true}'
    )
    assert request.variables == {"w": 500, "h": "20", "text": "Some & Some", "b": True}


@pytest.mark.parametrize(
    "query_v",
    [
        '{"w": NaN}',
        '{"w": Infinity}',
        "[1]",
        '"x"',
        "{",
        '{"w": {"x": 1}}',
        '{"w": [1]}',
        '{"w": null}',
        '{"bad name": 1}',
        "[" * 100000,
        '{"w": 1e999}',
    ],
)
def test_bad_query_v(query_v: str) -> None:
    with pytest.raises(StackError) as error:
        parse_render_path("s/abcdef.jpg", query_v=query_v)
    assert error.value.status == 400


@pytest.mark.parametrize(
    ("extension", "output_format"),
    [
        ("jpg", "jpg"),
        ("jpeg", "jpg"),
        ("JPG", "jpg"),
        ("png", "png"),
        ("gif", "gif"),
        ("webp", "webp"),
        ("avif", "avif"),
        ("tiff", "tiff"),
        ("heic", "heic"),
        ("jxl", "jxl"),
    ],
)
def test_output_formats(extension: str, output_format: str) -> None:
    assert parse_render_path(f"s/abcdef.{extension}").output_format == output_format


@pytest.mark.parametrize("extension", ["bmp", "svg", "exe", "jpg%00", "mp4", "blurhash", "jp2"])
def test_unsupported_output_format_is_400(extension: str) -> None:
    with pytest.raises(StackError, match="unsupported output format") as error:
        parse_render_path(f"s/abcdef.{extension}")
    assert error.value.status == 400 and not isinstance(error.value, UrlNotFound)


@pytest.mark.parametrize(
    "path",
    [
        # bad-inputs.md row 22: traversal, double extensions, uppercase hashes
        "s/..%2F..%2Fetc%2Fpasswd.jpg",
        "s/../../etc/passwd.jpg",
        "s/./abcdef.jpg",
        "../s/abcdef.jpg",
        "s/abcdef.jpg.png",
        "s/ABCDEF.jpg",
        "s/AbCdEf/slug.jpg",
        "s/abcde.jpg",  # 5 chars: too short
        "s/" + "a" * 41 + ".jpg",
        "s/abcdeg.jpg",
        "s/abcdef",  # no extension
        "s/abcdef.",
        "s/.jpg",
        "abcdef.jpg",  # no stack
        "",
        "/",
        "s/abcdef/",
        "s/abcdef/slug/",
        "s/-_my-alias_-.jpg",  # alias names are [A-Za-z0-9_] (valid ones: test_aliases.py)
        "bad name/abcdef.jpg",
        "s%2Fx/abcdef.jpg",
        # bad-inputs.md row 24: an item in the hash position is not a hash
        "dynamic/resize-width-1_0.jpg",
        "dynamic/resize-width-100.jpg",
    ],
)
def test_urls_that_name_no_image_are_404(path: str) -> None:
    with pytest.raises(UrlNotFound) as error:
        parse_render_path(path)
    assert error.value.status == 404


def test_route_ambiguity_row_24_is_a_400_for_the_bad_value() -> None:
    with pytest.raises(StackError) as error:
        parse_render_path("dynamic/resize-width-1_0/abcdef.jpg")
    assert (error.value.status, error.value.operation, error.value.parameter) == (
        400,
        "resize",
        "width",
    )


@pytest.mark.parametrize(
    "slug", ["x", "..x", "<script>alert(1)<script>", "a\x00b", "with.dots.in", "ü", "v1", "a" * 255]
)
def test_slug_is_anything_but_slash(slug: str) -> None:
    request = parse_render_path(f"s/abcdef/{slug}.jpg")
    assert (request.hash, request.slug) == ("abcdef", slug)


def test_overlong_slug_is_404() -> None:
    with pytest.raises(UrlNotFound):
        parse_render_path("s/abcdef/" + "a" * 256 + ".jpg")


def test_slug_that_is_hex_prefers_hash_then_slug() -> None:
    request = parse_render_path("s/abcdef/beef12.jpg")
    assert (request.hash, request.slug) == ("abcdef", "beef12")


def test_overlong_path_is_400() -> None:
    with pytest.raises(StackError) as error:
        parse_render_path("s/" + "o-dpr-2--" * 1000 + "/abcdef.jpg")
    assert error.value.status == 400


@pytest.mark.parametrize(
    ("value", "op", "param"),
    [
        ("0", "resize", "width"),
        ("-1", None, None),
        ("10001", "resize", "width"),
        ("1e3", "resize", "width"),
        ("1_0", "resize", "width"),
        ("+5", "resize", "width"),
        ("٣", "resize", "width"),
        ("", "resize", "width"),
    ],
)
def test_bad_input_row_18_resize_width(value: str, op: str | None, param: str | None) -> None:
    with pytest.raises(StackError) as error:
        parse_render_path(f"dynamic/resize-width-{value}/abcdef.jpg")
    assert error.value.status == 400
    if op is not None:
        assert (error.value.operation, error.value.parameter) == (op, param)


@pytest.mark.parametrize("value", ["nan", "inf", "400", "Infinity", "-inf"])
def test_bad_input_row_21_rotate_angle(value: str) -> None:
    with pytest.raises(StackError) as error:
        parse_render_path(f"dynamic/rotate-angle-{value}/abcdef.jpg")
    assert error.value.status == 400


def test_odd_token_count_is_400() -> None:
    with pytest.raises(StackError, match="name-key-value pairs") as error:
        parse_render_path("dynamic/resize-width/abcdef.jpg")
    assert error.value.operation == "resize"


def test_negative_values_cannot_be_written_in_urls() -> None:
    # `--` separates items, so `angle--45` becomes the items `rotate-angle` and `45`.
    with pytest.raises(StackError):
        parse_render_path("dynamic/rotate-angle--45/abcdef.jpg")


@pytest.mark.parametrize(
    ("path", "expression"),
    [
        ("dynamic/resize-width-[$w]/abcdef.jpg", "$w"),
        ("dynamic/resize-width-%5B$w%5D/abcdef.jpg", "$w"),
        ("dynamic/resize-width-%5b$w%5d/abcdef.jpg", "$w"),
        ("dynamic/resize-width-[$w - 10]/abcdef.jpg", "$w - 10"),  # - inside [] does not split
        ("dynamic/resize-width-[$w--1]/abcdef.jpg", "$w--1"),
    ],
)
def test_inline_expressions_define_dynamic_operations(path: str, expression: str) -> None:
    (resize,) = parse_render_path(path).operations
    assert resize.name == "resize"
    assert dict(resize.expressions) == {"width": expression}
    assert dict(resize.options) == {}


def test_inline_expressions_override_named_stacks_and_later_values_win() -> None:
    request = parse_render_path("s/resize-width-[$w * 2]-height-5/resize-height-[$h]/abcdef.jpg")
    assert dict(request.expression_overrides["resize"]) == {"width": "$w * 2", "height": "$h"}
    assert dict(request.overrides["resize"]) == {}
    request = parse_render_path("s/resize-width-[$w]/resize-width-7/abcdef.jpg")
    assert dict(request.overrides["resize"]) == {"width": 7}
    assert "resize" not in request.expression_overrides


@pytest.mark.parametrize("path", ["s/v-w-[1]/abcdef.jpg", "s/o-dpr-[2]/abcdef.jpg"])
def test_options_and_variables_cannot_be_expressions_in_urls(path: str) -> None:
    with pytest.raises(ExpressionsNotSupported, match="cannot be expressions") as error:
        parse_render_path(path)
    assert error.value.status == 400


@pytest.mark.parametrize(
    "path",
    [
        "dynamic/resize-width-$w/abcdef.jpg",  # $ outside brackets
        "dynamic/resize-width-[$w/abcdef.jpg",  # unbalanced
        "dynamic/resize-width-[$w]]/abcdef.jpg",
        "dynamic/resize-width-[$w +]/abcdef.jpg",  # syntax error
        "dynamic/resize-nosuch-[1]/abcdef.jpg",  # unknown parameter
        "dynamic/resize-width-[nosuch(1)]/abcdef.jpg",
    ],
)
def test_bad_inline_expressions(path: str) -> None:
    with pytest.raises(StackError) as error:
        parse_render_path(path)
    assert error.value.status == 400


def test_blur_is_rokkas_blurhash_format() -> None:
    assert parse_render_path("dynamic/resize-width-10/abcdef.blur").output_format == "blur"
    assert parse_render_path("thumb/abcdef/slug.BLUR").output_format == "blur"


@pytest.mark.parametrize("name", ["addframes"])
def test_not_implemented_operation_in_url(name: str) -> None:
    with pytest.raises(NotImplementedOperation, match=f"operation {name} is not implemented"):
        parse_render_path(f"dynamic/{name}/abcdef.jpg")


@pytest.mark.parametrize("path", ["dynamic/resizee-width-1/abcdef.jpg", "s/bogus-a-b/abcdef.jpg"])
def test_unknown_operation_in_url(path: str) -> None:
    with pytest.raises(UnknownOperation):
        parse_render_path(path)


def test_named_stack_override_values_are_validated_by_the_table() -> None:
    with pytest.raises(StackError) as error:
        parse_render_path("s/crop-anchor-nowhere/abcdef.jpg")
    assert (error.value.operation, error.value.parameter) == ("crop", "anchor")


def test_invalid_variable_name() -> None:
    with pytest.raises(StackError):
        parse_render_path("s/v-a.b-1/abcdef.jpg")


def test_too_many_dynamic_operations() -> None:
    with pytest.raises(StackError, match="at most 50"):
        parse_render_path("dynamic/" + "--".join(["grayscale"] * 51) + "/abcdef.jpg")


def test_request_is_frozen() -> None:
    request = parse_render_path("s/o-dpr-2/abcdef.jpg")
    with pytest.raises(AttributeError):
        request.stack = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        request.options["dpr"] = 3  # type: ignore[index]


@pytest.mark.parametrize(
    "path",
    [
        "s/\x00/abcdef.jpg",
        "s/o-\x00-1/abcdef.jpg",
        "dynamic/resize-width-\u0661/abcdef.jpg",
        "s/v-/abcdef.jpg",
        "dynamic/crop-width-1-height-1-anchor-x\ny/abcdef.jpg",
    ],
)
def test_garbage_is_a_400(path: str) -> None:
    with pytest.raises(StackError) as error:
        parse_render_path(path)
    assert error.value.status == 400


@pytest.mark.parametrize("path", ["s/" + "-" * 300 + "/abcdef.jpg", "s/o/abcdef.jpg"])
def test_items_without_content_are_harmless(path: str) -> None:
    request = parse_render_path(path)
    assert (request.options, request.overrides, request.variables) == ({}, {}, {})
