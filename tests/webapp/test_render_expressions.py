"""Variables and expressions through the whole app: stacks saved by PUT, rendered pixels,
cache identity (ETag) and Vary, and rokka's documented recipes used verbatim."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest
import pyvips

from tests.engine.conftest import decode, png, red_mask, scene
from tests.webapp.test_render import upload

# rokka's best-practice stack ("stack configuration best practices" guide), verbatim
RESPONSIVE = {
    "operations": [
        {
            "name": "resize",
            "options": {"mode": "fill"},
            "expressions": {"width": "$finalWidth", "height": "$finalHeight"},
        },
        {
            "name": "crop",
            "options": {},
            "expressions": {"width": "$finalWidth", "height": "$finalHeight"},
        },
    ],
    "options": {"autoformat": True},
    "variables": {
        "defaultWidth": 900,
        "defaultHeight": 600,
        "w": 0,
        "h": 0,
        "r": "$defaultWidth / $defaultHeight",
        "finalWidth": "$w == 0 ? ($h == 0 ? $defaultWidth : ($h * $r)) : $w",
        "finalHeight": "$h == 0 ? $finalWidth / $r : $h",
    },
}
# rokka's stack-expression examples (stacks reference), verbatim
QUALITY_BY_DPR = {
    "operations": [{"name": "resize", "options": {"width": 200, "height": 200}}],
    "options": {"optim.quality": 4, "autoformat": True},
    "expressions": [
        {"expression": "options.dpr >= 2", "overrides": {"options": {"optim.quality": 2}}}
    ],
}
SAVE_DATA = {
    "operations": [{"name": "resize", "options": {"width": 200, "height": 200}}],
    "options": {"autoformat": True},
    "expressions": [
        {
            "expression": "request.headers.save_data == 'on'",
            "overrides": {"options": {"optim.quality": 2, "dpr": 1}},
        }
    ],
}


@pytest.fixture
def image(account) -> str:
    """A 100x80 grey PNG with a red 20x20 square at (10, 10)."""
    return upload(account, png(scene(100, 80, square=(10, 10, 20))))["hash"]


def put_stack(account, name: str, body: dict):
    return account.request("PUT", f"/stacks/{account.org}/{name}", data=json.dumps(body))


def saved(account, name: str, body: dict) -> None:
    response = put_stack(account, name, body)
    assert response.status_code == 201, response.get_data(as_text=True)


def size(response) -> tuple[int, int]:
    assert response.status_code == 200, response.get_data(as_text=True)
    height, width = decode(response.data).shape[:2]
    return width, height


def error_of(response, status: int = 400) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == status
    return body["error"]["message"]


def test_stack_variables_path_and_query_overrides(client, account, image):
    saved(
        account,
        "wh",
        {
            "operations": [
                {
                    "name": "resize",
                    "options": {"mode": "absolute"},
                    "expressions": {"width": "$w", "height": "$h"},
                }
            ],
            "variables": {"w": 50, "h": "$w / 2"},
        },
    )
    base = f"/{account.org}/wh"
    assert size(client.get(f"{base}/{image}.png")) == (50, 25)
    assert size(client.get(f"{base}/v-w-80/{image}.png")) == (80, 40)
    assert size(client.get(f"{base}/variables-w-80-h-10/{image}.png")) == (80, 10)
    assert size(client.get(f"{base}/v-w-80/v-w-30/{image}.png")) == (30, 15)  # later wins
    query = quote(json.dumps({"w": 60}))
    assert size(client.get(f"{base}/{image}.png?v={query}")) == (60, 30)
    assert size(client.get(f"{base}/v-w-80/{image}.png?v={query}")) == (60, 30)  # ?v= wins


def test_option_values_written_as_variables(client, account, image):
    saved(
        account,
        "optvar",
        {
            "operations": [
                {
                    "name": "resize",
                    "options": {"width": "$w", "height": "[$w * 2]", "mode": "absolute"},
                }
            ],
            "variables": {"w": 20},
        },
    )
    assert size(client.get(f"/{account.org}/optvar/v-w-15/{image}.png")) == (15, 30)


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ("", (900, 600)),
        ("/v-w-1200", (1200, 800)),
        ("/v-h-800", (1200, 800)),
        ("/v-w-1000-h-800", (1000, 800)),
        ("/v-r-1.2", (900, 750)),
        ("/v-r-1.25-w-1000", (1000, 800)),
    ],
)
def test_rokka_responsive_recipe_verbatim(client, account, image, variables, expected):
    saved(account, "responsive", RESPONSIVE)
    # the guide's table of URLs and sizes
    assert size(client.get(f"/{account.org}/responsive{variables}/{image}.png")) == expected


def test_operation_expression_enabled_reads_the_image(client, account, image):
    for name, condition in (("big", "image.width > 1000"), ("small", "image.width < 1000")):
        saved(
            account,
            name,
            {"operations": [{"name": "grayscale", "expressions": {"enabled": condition}}]},
        )
    assert red_mask(decode(client.get(f"/{account.org}/big/{image}.png").data)).any()
    assert not red_mask(decode(client.get(f"/{account.org}/small/{image}.png").data)).any()


def test_expressions_read_user_metadata_and_subject_area(client, account, image):
    response = account.request(
        "PATCH", f"/sourceimages/{account.org}/{image}/meta/user", data=json.dumps({"int:w": 33})
    )
    assert response.status_code in (200, 204), response.get_data(as_text=True)
    saved(
        account,
        "metaabs",
        {
            "operations": [
                {
                    "name": "resize",
                    "options": {"mode": "absolute"},
                    "expressions": {
                        "width": "image.meta_user.w ?? 7",
                        "height": "image.hasSubjectArea ? 5 : image.height / 2",
                    },
                },
            ]
        },
    )
    assert size(client.get(f"/{account.org}/metaabs/{image}.png")) == (33, 40)


def test_inline_url_expressions(client, account, image):
    org = account.org
    assert size(client.get(f"/{org}/dynamic/resize-width-[image.width / 2]/{image}.png")) == (
        50,
        40,
    )
    query = quote(json.dumps({"w": 30}))
    assert size(client.get(f"/{org}/dynamic/resize-width-[$w]/{image}.png?v={query}"))[0] == 30
    assert size(client.get(f"/{org}/dynamic/resize-width-%5B$w - 5%5D/v-w-25/{image}.png"))[0] == 20
    saved(account, "plain", {"operations": [{"name": "resize", "options": {"width": 90}}]})
    assert size(client.get(f"/{org}/plain/resize-width-[image.height]/{image}.png"))[0] == 80


def test_stack_expression_on_dpr_overrides_variables(client, account, image):
    saved(
        account,
        "retina",
        {
            "operations": [{"name": "resize", "expressions": {"width": "$w"}}],
            "variables": {"w": 40},
            "expressions": [
                {"expression": "options.dpr >= 2", "overrides": {"variables": {"w": 10}}},
                {"expression": "options.dpr >= 3", "overrides": {"variables": {"w": 5}}},
            ],
        },
    )
    base = f"/{account.org}/retina"
    assert size(client.get(f"{base}/{image}.png"))[0] == 40
    assert size(client.get(f"{base}/o-dpr-2/{image}.png"))[0] == 20  # 10 x dpr 2
    assert size(client.get(f"{base}/o-dpr-3/{image}.png"))[0] == 15  # both match, last wins


def test_rokka_quality_by_dpr_recipe_verbatim(client, account, image):
    saved(account, "qdpr", QUALITY_BY_DPR)
    assert size(client.get(f"/{account.org}/qdpr/{image}.jpg")) == (200, 160)
    assert size(client.get(f"/{account.org}/qdpr/options-dpr-2/{image}.jpg")) == (400, 320)


def test_stack_expression_lowers_jpeg_quality_at_high_dpr(client, account):
    photo = upload(account, png(noise(120, 90)))["hash"]
    body = {"operations": [{"name": "resize", "options": {"width": 120}}]}
    saved(account, "q-plain", body)
    saved(
        account,
        "q-expr",
        {
            **body,
            "expressions": [
                {"expression": "options.dpr >= 2", "overrides": {"options": {"jpg.quality": 20}}}
            ],
        },
    )
    plain = client.get(f"/{account.org}/q-plain/o-dpr-2/{photo}.jpg")
    lowered = client.get(f"/{account.org}/q-expr/o-dpr-2/{photo}.jpg")
    assert size(plain) == size(lowered) == (240, 180)
    assert len(lowered.data) < 0.7 * len(plain.data)
    assert lowered.headers["ETag"] != plain.headers["ETag"]
    # at dpr 1 the expression does not match: same bytes as the plain stack
    same = client.get(f"/{account.org}/q-expr/{photo}.jpg")
    assert same.data == client.get(f"/{account.org}/q-plain/{photo}.jpg").data


def noise(width: int, height: int):
    import numpy as np
    import pyvips

    rng = np.random.default_rng(7)
    arr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return pyvips.Image.new_from_array(arr, interpretation="srgb")


def test_rokka_save_data_recipe_verbatim_with_vary(client, account, image):
    saved(account, "savedata", SAVE_DATA)
    url = f"/{account.org}/savedata/o-dpr-2/{image}.png"
    normal = client.get(url)
    thrifty = client.get(url, headers={"Save-Data": "on"})
    assert size(normal) == (400, 320)
    assert size(thrifty) == (200, 160)  # the override forces dpr 1
    for response in (normal, thrifty):
        vary = [v.strip() for v in response.headers["Vary"].split(",")]
        assert "Save-Data" in vary and "Accept" in vary
    assert normal.headers["ETag"] != thrifty.headers["ETag"]
    # served again (render cache on): each header value keeps its own answer
    assert size(client.get(url, headers={"Save-Data": "on"})) == (200, 160)
    assert size(client.get(url)) == (400, 320)


def test_no_vary_for_headers_no_expression_reads(client, account, image):
    saved(
        account,
        "novary",
        {
            "operations": [{"name": "resize", "expressions": {"width": "$w"}}],
            "variables": {"w": 30},
        },
    )
    response = client.get(f"/{account.org}/novary/{image}.png")
    assert size(response)[0] == 30
    assert "Vary" not in response.headers


def test_plans_that_evaluate_alike_share_an_etag(client, account, image):
    saved(
        account,
        "ident",
        {
            "operations": [{"name": "resize", "expressions": {"width": "$w"}}],
            "variables": {"w": 40, "unused": 1},
        },
    )
    base = f"/{account.org}/ident"
    etag = client.get(f"{base}/{image}.png").headers["ETag"]
    assert client.get(f"{base}/v-w-40/{image}.png").headers["ETag"] == etag
    assert (
        client.get(f"{base}/{image}.png?v={quote(json.dumps({'w': 40}))}").headers["ETag"] == etag
    )
    assert client.get(f"{base}/v-unused-2/{image}.png").headers["ETag"] == etag
    assert client.get(f"{base}/resize-width-40/{image}.png").headers["ETag"] == etag
    assert client.get(f"{base}/v-w-41/{image}.png").headers["ETag"] != etag


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("dynamic/resize-width-[$nosuch]/{h}.png", "undefined variable $nosuch"),
        ("dynamic/resize-width-[$w * 1000]/v-w-50/{h}.png", "width must be an integer"),
        ("dynamic/resize-width-[1 / 0]/{h}.png", "division by zero"),
        ("dynamic/resize-width-['abc' * 2]/{h}.png", "is not a number"),
        ("dynamic/resize-width-[image.width.x]/{h}.png", "cannot read property"),
        ("dynamic/resize-width-[$w]/v-w-abc/{h}.png", "width must be an integer"),
        ("dynamic/resize-width-[2 ** 2000]/{h}.png", "not a finite number"),
        ("dynamic/o-dpr-[2]/resize-width-5/{h}.png", "cannot be expressions"),
        ("dynamic/resize-width-[" + "(" * 60 + "1" + ")" * 60 + "]/{h}.png", "nested deeper"),
        ("dynamic/resize-width-[" + "1+" * 600 + "1]/{h}.png", "longer than 1000"),
        ("dynamic/resize-width-[$w]/{h}.png?v=%7B%22w%22%3A%22%24x%22%7D", "got a string"),
    ],
)
def test_render_time_expression_errors_are_400(client, account, image, url, needle):
    message = error_of(client.get(f"/{account.org}/" + url.format(h=image)))
    assert needle in message


def test_stack_with_undefined_variable_renders_400_naming_it(client, account, image):
    saved(account, "undef", {"operations": [{"name": "resize", "expressions": {"width": "$w"}}]})
    assert "undefined variable $w" in error_of(client.get(f"/{account.org}/undef/{image}.png"))
    assert size(client.get(f"/{account.org}/undef/v-w-12/{image}.png"))[0] == 12


def test_variable_cycles_are_400(client, account, image):
    saved(
        account,
        "cycle",
        {
            "operations": [{"name": "resize", "expressions": {"width": "$a"}}],
            "variables": {"a": "$b + 1", "b": "$a + 1"},
        },
    )
    assert "refers to itself" in error_of(client.get(f"/{account.org}/cycle/{image}.png"))


def test_hostile_variable_chain_is_a_quick_400(client, account, image):
    # each variable doubles the previous one's text: 2**30 characters if nothing stopped it
    variables = {"v0": "x"} | {f"v{i}": f"$v{i - 1} ~ $v{i - 1}" for i in range(1, 31)}
    saved(
        account,
        "blowup",
        {
            "operations": [
                {
                    "name": "resize",
                    "options": {"width": 10},
                    "expressions": {"enabled": "$v30 == 'x'"},
                }
            ],
            "variables": variables,
        },
    )
    started = time.monotonic()
    message = error_of(client.get(f"/{account.org}/blowup/{image}.png"))
    assert time.monotonic() - started < 2
    assert "longer than 4096" in message or "work limit" in message


def test_expressions_cannot_exceed_url_budgets(client, account, image):
    literal = client.get(
        f"/{account.org}/dynamic/resize-width-10000-height-10000-mode-absolute/o-dpr-9/{image}.png"
    )
    computed = client.get(
        f"/{account.org}/dynamic/resize-width-[$s]-height-[$s]-mode-absolute/"
        f"o-dpr-9/v-s-10000/{image}.png"
    )
    assert literal.status_code == computed.status_code
    assert 400 <= computed.status_code < 500
    assert error_of(computed, computed.status_code) == error_of(literal, literal.status_code)


def test_put_stack_with_syntax_error_names_expression_and_position(account):
    response = put_stack(
        account, "bad", {"operations": [{"name": "resize", "expressions": {"width": "$w * (2 +"}}]}
    )
    message = error_of(response)
    assert "operation resize: expression for width" in message
    assert "'$w * (2 +'" in message and "at position 9" in message
    response = put_stack(
        account,
        "bad",
        {"expressions": [{"expression": "request.headers.save_data = 'on'", "overrides": {}}]},
    )
    assert "stack expression 1" in error_of(response)


def test_stack_expression_on_accept_header(client, account, image):
    saved(
        account,
        "byaccept",
        {
            "operations": [{"name": "resize", "expressions": {"width": "$w"}}],
            "variables": {"w": 40},
            "expressions": [
                {
                    "expression": "request.headers.accept contains 'image/webp'",
                    "overrides": {"variables": {"w": 20}},
                }
            ],
        },
    )
    url = f"/{account.org}/byaccept/{image}.png"
    webp = client.get(url, headers={"Accept": "image/avif,image/webp,*/*"})
    other = client.get(url, headers={"Accept": "image/png"})
    assert size(webp)[0] == 20 and size(other)[0] == 40
    assert webp.headers["Vary"] == other.headers["Vary"] == "Accept"  # autoformat is off
    # credentials are never visible to expressions
    saved(
        account,
        "bycookie",
        {
            "operations": [
                {
                    "name": "resize",
                    "options": {"width": 30},
                    "expressions": {"enabled": "request.headers.cookie == null"},
                }
            ],
        },
    )
    seen = client.get(f"/{account.org}/bycookie/{image}.png", headers={"Cookie": "a=b"})
    assert size(seen)[0] == 30
    assert "Vary" not in seen.headers


def test_deep_variable_chains_are_400(client, account, image):
    chain = {"v0": 1} | {f"v{i}": f"$v{i - 1} + 1" for i in range(1, 100)}
    saved(
        account,
        "chain",
        {
            "operations": [{"name": "resize", "expressions": {"width": "$v99"}}],
            "variables": chain,
        },
    )
    assert "more than 32 levels deep" in error_of(client.get(f"/{account.org}/chain/{image}.png"))
    assert size(client.get(f"/{account.org}/chain/v-v90-5/{image}.png"))[0] == 14
    too_many = {f"v{i}": i for i in range(101)}
    assert "at most 100 entries" in error_of(put_stack(account, "many", {"variables": too_many}))


def test_deep_nested_evaluation_is_400_not_a_stack_overflow(client, account, image):
    chain = {"v0": 1} | {f"v{i}": f"$v{i - 1}" + " + 1" * 110 for i in range(1, 32)}
    saved(
        account,
        "deep",
        {
            "operations": [
                {"name": "resize", "expressions": {"width": "(((($v31))))" + " + 1" * 110}}
            ],
            "variables": chain,
        },
    )
    assert "nested deeper than 200" in error_of(client.get(f"/{account.org}/deep/{image}.png"))


def test_image_format_is_named_as_rokka_does(client, account):
    """rokka's expressions compare ``image.format`` with 'jpeg' (reference §2.4)."""
    item = upload(account, pyvips.Image.black(60, 40, bands=3).jpegsave_buffer(), "a.jpg")
    stack = {
        "operations": [
            {
                "name": "resize",
                "options": {"width": 10},
                "expressions": {"width": "image.format == 'jpeg' ? 30 : 20"},
            }
        ]
    }
    put = account.request("PUT", f"/stacks/{account.org}/fmt", data=json.dumps(stack))
    assert put.status_code == 201, put.get_data(as_text=True)
    out = client.get(f"/{account.org}/fmt/{item['hash']}.png")
    assert out.status_code == 200
    assert decode(out.data).shape[1] == 30


def test_errors_never_echo_what_an_expression_read(client, account):
    """An anonymous render URL must not dump user metadata through an error message."""
    item = upload(account, png(scene(40, 30)))
    put = account.request(
        "PUT",
        f"/sourceimages/{account.org}/{item['hash']}/meta/user",
        data=json.dumps({"secret": "s3cr3t-token-123"}),
    )
    assert put.status_code in (200, 201, 204), put.get_data(as_text=True)
    for expression in ("image.meta_user", "image.meta_user.secret", "image.meta_user.secret*2"):
        url = f"/{account.org}/dynamic/resize-width-[{expression}]/{item['hash']}.png"
        response = client.get(url)
        assert response.status_code == 400
        assert "s3cr3t" not in response.get_data(as_text=True)
