"""``render_org_fallback``: a stage organization renders the images of production.

rokka: renders look up missing images in the fallback organization; the API and search do
not see them, and stacks are not inherited.
"""

from __future__ import annotations

import io
import json

from tests.conftest import Account
from tests.engine.conftest import decode, png, scene
from tests.webapp.test_render import upload
from webapp.signing import signature


def _stage_with_fallback(account: Account) -> Account:
    """``{org}-stage``, administered by the same user, falling back to ``account.org``."""
    stage = f"{account.org}-stage"
    assert account.request("PUT", f"/organizations/{stage}", data="{}").status_code == 200
    response = account.request(
        "PUT", f"/organizations/{stage}/options/render_org_fallback", data=json.dumps(account.org)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    caller = Account.__new__(Account)
    caller.client, caller.org, caller.user_id, caller.api_key = (
        account.client,
        stage,
        account.user_id,
        account.api_key,
    )
    return caller


def test_stage_renders_production_images(client, account):
    image = upload(account, png(scene(120, 90, square=(10, 10, 30))))["hash"]
    stage = _stage_with_fallback(account)
    url = f"/{stage.org}/dynamic/resize-width-60/{image}.png"
    rendered = client.get(url)
    assert rendered.status_code == 200, rendered.get_data(as_text=True)
    own = client.get(f"/{account.org}/dynamic/resize-width-60/{image}.png")
    stage_pixels, prod_pixels = decode(rendered.data), decode(own.data)
    assert stage_pixels.shape == prod_pixels.shape == (45, 60, 3)
    assert abs(stage_pixels.astype(int) - prod_pixels.astype(int)).max() <= 1
    # short hashes too
    assert client.get(f"/{stage.org}/dynamic/noop/{image[:8]}.png").status_code == 200


def test_the_api_does_not_see_fallback_images(client, account):
    image = upload(account, png(scene(40, 30)))["hash"]
    stage = _stage_with_fallback(account)
    assert stage.request("GET", f"/sourceimages/{stage.org}/{image}").status_code == 404
    listing = stage.request("GET", f"/sourceimages/{stage.org}").get_json()
    assert listing["total"] == 0


def test_stacks_are_not_inherited(client, account):
    image = upload(account, png(scene(40, 30)))["hash"]
    stack = {"operations": [{"name": "resize", "options": {"width": 20}}]}
    assert (
        account.request("PUT", f"/stacks/{account.org}/small", data=json.dumps(stack)).status_code
        == 201
    )
    stage = _stage_with_fallback(account)
    assert client.get(f"/{account.org}/small/{image}.png").status_code == 200
    assert client.get(f"/{stage.org}/small/{image}.png").status_code == 404
    assert (
        stage.request("PUT", f"/stacks/{stage.org}/small", data=json.dumps(stack)).status_code
        == 201
    )
    assert client.get(f"/{stage.org}/small/{image}.png").status_code == 200


def test_own_images_win_and_unset_option_stops_falling_back(client, account):
    stage = _stage_with_fallback(account)
    prod_only = upload(account, png(scene(40, 30, square=(0, 0, 10))))["hash"]
    assert client.get(f"/{stage.org}/dynamic/noop/{prod_only}.png").status_code == 200
    unset = stage.request(
        "PUT", f"/organizations/{stage.org}/options/render_org_fallback", data="null"
    )
    assert unset.status_code == 200, unset.get_data(as_text=True)
    assert client.get(f"/{stage.org}/dynamic/noop/{prod_only}.png").status_code == 404


def test_missing_everywhere_is_404(client, account):
    stage = _stage_with_fallback(account)
    response = client.get(f"/{stage.org}/dynamic/noop/{'ab' * 20}.png")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == 404


def test_protected_fallback_images_need_the_stage_signature(client, account):
    form = {
        "filedata": (io.BytesIO(png(scene(40, 30))), "p.png"),
        "options[0]": json.dumps({"protected": True}),
    }
    protected = account.request(
        "POST", f"/sourceimages/{account.org}", data=form, content_type="multipart/form-data"
    ).get_json()["items"][0]["hash"]
    stage = _stage_with_fallback(account)
    path = f"/{stage.org}/dynamic/noop/{protected}.png"
    assert client.get(path).status_code == 403
    keys = stage.request("GET", f"/organizations/{stage.org}").get_json()["signing_keys"]
    sig = signature(path, keys[0]["key"])
    assert client.get(f"{path}?sig={sig}").status_code == 200
