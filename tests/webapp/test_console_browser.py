"""The console in a real headless Chromium against a real ``cropstack serve``.

Each test signs up its own organization on one shared server, opens ``/console/`` in a
fresh browser context (so a fresh sessionStorage), and checks what a user would: what the
page shows, what the API then holds, and the pixels of the renders the page shows.
Every test also records each request the page makes (none may go to another host) and
each console message (no CSP violation, no script error).

With CROPSTACK_SCREENSHOTS=1 the screenshots land in docs/img (docs/console.md).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import pyvips

from tests.browser import Recorder, chromium, screenshot
from tests.realserver import running_server
from tests.webapp.images import png

pytestmark = [pytest.mark.server, pytest.mark.slow]

#: The synthetic picture: 2000 x 800 as displayed, a red square at FEATURE (x, y, w, h).
PICTURE = (2000, 800)
FEATURE = (700, 350, 100, 100)
WAIT_MS = 30_000


# -- a server, its organizations, the browser -------------------------------------------


@dataclass
class Org:
    """An organization on the test server with an admin key, and API calls as it."""

    base: str
    name: str
    key: str

    def call(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, Any]:
        """(status, JSON body or None) of one API request with this org's key."""
        request = urllib.request.Request(self.base + path, data=body, method=method)
        request.add_header("Api-Key", self.key)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        return status, json.loads(raw) if raw else None

    def upload(self, data: bytes, name: str) -> dict[str, Any]:
        """Upload one file through the API; the stored image object."""
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="filedata"; '
                f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, answer = self.call(
            "POST", f"/sourceimages/{self.name}", body, f"multipart/form-data; boundary={boundary}"
        )
        assert status == 200, answer
        return answer["items"][0]

    def image(self, ref: str) -> dict[str, Any]:
        status, answer = self.call("GET", f"/sourceimages/{self.name}/{ref}")
        assert status == 200, answer
        return answer


def fetch_bytes(url: str) -> bytes:
    """The body of a GET of ``url`` (a render URL the page showed), without a key."""
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return response.read()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``cropstack serve --signup`` for the module (each test signs up its own org)."""
    with running_server(tmp_path_factory.mktemp("console"), "--signup") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def new_org(base: str) -> Org:
    name = f"c{uuid.uuid4().hex[:12]}"
    body = json.dumps({"email": f"admin@{name}.example", "organization": name}).encode()
    request = urllib.request.Request(base + "/users", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return Org(base, name, json.loads(response.read())["api_key"])


@pytest.fixture
def org(base: str) -> Org:
    return new_org(base)


@pytest.fixture
def open_page(browser: Any, base: str) -> Iterator[Callable[..., tuple[Any, Recorder]]]:
    """``open_page(**context_options)``: a page in a fresh context with a Recorder; after
    the test, no request of any page went to another host."""
    opened: list[tuple[Any, Recorder]] = []

    def make(**options: Any) -> tuple[Any, Recorder]:
        options.setdefault("viewport", {"width": 1280, "height": 900})
        context = browser.new_context(**options)
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        recorder = Recorder()
        recorder.attach(page)
        opened.append((context, recorder))
        return page, recorder

    yield make
    for context, recorder in opened:
        context.close()
        assert recorder.requests, "the page made no request at all"
        assert recorder.foreign_requests(base) == []


def sign_in(page: Any, org: Org) -> None:
    page.goto(org.base + "/console/")
    page.get_by_label("Organization", exact=True).fill(org.name)
    page.get_by_label("API key", exact=True).fill(org.key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Images", level=1).wait_for()


def real_errors(recorder: Recorder) -> list[str]:
    """Console errors other than renders the busy server shed with 503 + Retry-After (the
    console loads those again; each test checks that the images it needs did load)."""
    return [e for e in recorder.errors() if "status of 503" not in e]


def assert_clean(recorder: Recorder) -> None:
    """No console error: no CSP violation, no failed load, no script error."""
    assert real_errors(recorder) == []


# -- pictures and pixels ---------------------------------------------------------------


def feature_jpeg() -> bytes:
    """A JPEG stored on its side with EXIF orientation 6: displayed (EXIF applied) it is
    PICTURE wide and high with a red square at FEATURE, so drawing on what the browser
    shows must give display coordinates, not stored ones."""
    width, height = PICTURE
    x, y, w, h = FEATURE
    red = pyvips.Image.black(w, h, bands=3) + [230, 20, 20]
    shown = (pyvips.Image.black(width, height, bands=3) + [120, 140, 160]).insert(red, x, y)
    stored = shown.cast("uchar").copy(interpretation="srgb").rot270().copy()
    stored.set_type(pyvips.GValue.gint_type, "orientation", 6)
    data = stored.jpegsave_buffer(Q=95)
    upright = pyvips.Image.new_from_buffer(data, "").autorot()
    assert (upright.width, upright.height) == PICTURE
    cx, cy, _, _ = red_centre(upright.jpegsave_buffer())
    assert abs(cx - (x + w / 2) / width) < 0.005 and abs(cy - (y + h / 2) / height) < 0.005
    return data


def red_centre(data: bytes) -> tuple[float, float, int, int]:
    """(x, y) of the red pixels' centre as fractions of the image, and its size."""
    image = pyvips.Image.new_from_buffer(data, "").colourspace("srgb")[0:3]
    pixels = np.ndarray(
        buffer=image.write_to_memory(), dtype=np.uint8, shape=(image.height, image.width, 3)
    ).astype(int)
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    ys, xs = np.nonzero(red)
    assert len(xs) > 20, "no red feature in the render"
    return (
        float(xs.mean() + 0.5) / image.width,
        float(ys.mean() + 0.5) / image.height,
        (image.width),
        image.height,
    )


def loaded(page: Any, selector: str) -> None:
    """Wait until the image ``selector`` has finished loading successfully."""
    page.wait_for_function(
        "s => { const i = document.querySelector(s); return i && i.src && i.complete "
        "&& i.naturalWidth > 0 }",
        arg=selector,
    )


def screen_point(box: dict[str, float], x: float, y: float) -> tuple[float, float]:
    """Where source pixel (x, y) of the PICTURE is on screen inside ``box``."""
    return box["x"] + x * box["width"] / PICTURE[0], box["y"] + y * box["height"] / PICTURE[1]


def area_fields(page: Any) -> dict[str, int]:
    return {
        key: int(page.get_by_label(label, exact=True).input_value())
        for key, label in (("x", "X"), ("y", "Y"), ("width", "Width"), ("height", "Height"))
    }


def assert_covers_feature(area: dict[str, Any], slack: int) -> None:
    """``area`` (source pixels) holds the whole FEATURE and at most ``slack`` pixels more
    on each side."""
    x, y, w, h = FEATURE
    assert not area.get("percentage")
    assert area["x"] <= x and area["y"] <= y, area
    assert area["x"] + area["width"] >= x + w and area["y"] + area["height"] >= y + h, area
    assert area["x"] >= x - slack and area["y"] >= y - slack, area
    assert area["x"] + area["width"] <= x + w + slack, area
    assert area["y"] + area["height"] <= y + h + slack, area


def wait_saved(page: Any) -> None:
    """Wait for the editor's message that an area change was stored under a new hash."""
    areas = page.get_by_role("region", name="Areas")
    areas.get_by_text("Saved. The image's new hash is").wait_for()


def preview_src(page: Any, ratio: str) -> str:
    return page.locator(f'img[data-ratio="{ratio}"]').evaluate("i => i.src")


# -- the tests -----------------------------------------------------------------------


def test_sign_in_upload_draw_subject_area_and_previews(open_page, org, tmp_path):
    api_image = org.upload(png(300, 200, seed=1), "from-the-api.png")
    page, recorder = open_page()
    sign_in(page, org)

    # The image uploaded through the API, as a thumbnail rendered by this server.
    thumb = page.get_by_role("img", name="from-the-api.png", exact=True)
    thumb.wait_for()
    loaded(page, 'img[alt="from-the-api.png"]')
    src = thumb.evaluate("i => i.src")
    assert src.startswith(f"{org.base}/{org.name}/dynamic/") and api_image["hash"] in src
    screenshot(page, "gallery", tmp_path)

    # Upload through the console's file input: progress, then the new thumbnail.
    (tmp_path / "feature.jpg").write_bytes(feature_jpeg())
    page.get_by_label("Upload", exact=True).set_input_files(str(tmp_path / "feature.jpg"))
    page.get_by_text("uploaded", exact=True).wait_for()
    assert page.get_by_label("Upload of feature.jpg").evaluate("p => p.value") == 1
    page.get_by_role("img", name="feature.jpg", exact=True).wait_for()
    status, listing = org.call("GET", f"/sourceimages/{org.name}?name=feature.jpg")
    assert status == 200 and listing["total"] == 1
    uploaded = listing["items"][0]
    assert (uploaded["width"], uploaded["height"]) == PICTURE  # EXIF applied

    # Its detail view: the hash as text; draw a subject area over the red square.
    page.get_by_role("link", name="feature.jpg", exact=True).click()
    page.get_by_role("heading", name="feature.jpg", level=1).wait_for()
    assert page.locator("code.hash").inner_text() == uploaded["hash"]
    loaded(page, "img.picture")
    page.get_by_role("button", name="Subject area", exact=True).click()
    assert (
        page.get_by_role("button", name="Subject area", exact=True).get_attribute("aria-pressed")
        == "true"
    )
    box = page.locator("img.picture").bounding_box()
    # shown far smaller than the source: coordinates must still come out in source pixels
    assert box["width"] < PICTURE[0] / 2
    x, y, w, h = FEATURE
    margin = 10
    page.mouse.move(*screen_point(box, x - margin, y - margin))
    page.mouse.down()
    page.mouse.move(*screen_point(box, x + w / 2, y + h / 2), steps=5)
    page.mouse.move(*screen_point(box, x + w + margin, y + h + margin), steps=5)
    page.mouse.up()
    drawn = area_fields(page)
    tolerance = PICTURE[0] / box["width"] + 1  # one CSS pixel, in source pixels
    for key, expected in (("x", x - margin), ("y", y - margin)):
        assert abs(drawn[key] - expected) <= tolerance, drawn
    for key, expected in (("width", w + 2 * margin), ("height", h + 2 * margin)):
        assert abs(drawn[key] - expected) <= 2 * tolerance, drawn

    # While unsaved, the 16:9 preview shows where the crop will fall: centred on the area.
    page.wait_for_function(
        "() => document.querySelector('img[data-ratio=\"16:9\"]').src.includes('anchor-')"
    )
    loaded(page, 'img[data-ratio="16:9"]')
    cx, cy, pw, ph = red_centre(fetch_bytes(preview_src(page, "16:9")))
    assert abs(cx - 0.5) < 0.03 and abs(cy - 0.5) < 0.03, (cx, cy)
    screenshot(page, "drawing", tmp_path, full_page=True)

    # Save: a new hash, shown on the page; the API holds an area covering the feature.
    page.get_by_role("button", name="Save", exact=True).click()
    wait_saved(page)
    new_hash = page.locator("code.hash").inner_text()
    assert new_hash != uploaded["hash"] and len(new_hash) == 40
    saved = org.image(new_hash)
    assert_covers_feature(saved["dynamic_metadata"]["subject_area"], slack=margin + 2 * tolerance)

    # After Save the previews are the real renders of the stored area.
    page.wait_for_function(
        "h => { const s = document.querySelector('img[data-ratio=\"16:9\"]').src; "
        "return s.endsWith(h + '.jpg') && !s.includes('anchor-') }",
        arg=new_hash,
    )
    loaded(page, 'img[data-ratio="16:9"]')
    stored_src = preview_src(page, "16:9")
    cx, cy, pw, ph = red_centre(fetch_bytes(stored_src))
    assert abs(pw / ph - 16 / 9) < 0.02
    assert abs(cx - 0.5) < 0.03 and abs(cy - 0.5) < 0.03, (cx, cy)
    # The same preview of the image without the area is not centred on the feature: the
    # check above is about the stored area, not about where the square happens to be.
    before = fetch_bytes(stored_src.replace(new_hash, uploaded["hash"]))
    assert red_centre(before)[0] < 0.4
    loaded(page, 'img[data-ratio="1:1"]')
    loaded(page, 'img[data-ratio="9:16"]')
    screenshot(page, "saved", tmp_path, full_page=True)

    # Opened again, the stored area is drawn.
    page.reload()
    loaded(page, "img.picture")
    assert page.locator(".box").is_visible()
    stored = saved["dynamic_metadata"]["subject_area"]
    assert area_fields(page) == {k: stored[k] for k in ("x", "y", "width", "height")}

    # Remove deletes it (again a new hash), and the view says none is stored.
    page.get_by_role("button", name="Remove", exact=True).click()
    wait_saved(page)
    removed = org.image(page.locator("code.hash").inner_text())
    assert "subject_area" not in removed["dynamic_metadata"]
    assert not page.locator(".box").is_visible()
    assert_clean(recorder)


def test_wrong_key_shows_a_message_and_nothing_else(open_page, org, base, tmp_path):
    page, recorder = open_page()
    page.goto(base + "/console/")
    page.get_by_label("Organization", exact=True).fill(org.name)
    page.get_by_label("API key", exact=True).fill("not-a-key-" + "x" * 54)
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    alert.get_by_text("Sign-in failed: this API key is not valid.").wait_for()
    screenshot(page, "wrong-key", tmp_path)
    assert page.locator("h1").inner_text() == "Sign in"
    assert page.locator("img").count() == 0
    assert page.get_by_role("button", name="Sign out").count() == 0
    assert page.evaluate("() => sessionStorage.length") == 0

    # A valid key of another organization: refused, with the organization named.
    other = new_org(base)
    page.get_by_label("API key", exact=True).fill(other.key)
    page.get_by_role("button", name="Sign in").click()
    alert.get_by_text(f"may not read the images of organization {org.name}").wait_for()
    assert page.evaluate("() => sessionStorage.length") == 0

    # The right key signs in. The key is traded for a short-lived token: the key is kept
    # nowhere (the token is, in sessionStorage only), and neither is ever in a URL.
    page.get_by_label("API key", exact=True).fill(org.key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Images", level=1).wait_for()
    kept = json.loads(page.evaluate("() => JSON.stringify(sessionStorage)"))
    assert org.key not in json.dumps(kept)
    token = json.loads(next(iter(kept.values())))["token"]
    assert page.evaluate("() => localStorage.length") == 0
    assert page.evaluate("() => document.cookie") == ""
    for secret in (org.key, other.key, token):
        assert not [url for url in recorder.requests if secret in url]
    # The token is what the page's API calls carry, and it works as the key does.
    request = urllib.request.Request(f"{base}/sourceimages/{org.name}?limit=0")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    # Signing out forgets it.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    assert page.evaluate("() => sessionStorage.length") == 0
    # Only the two refused sign-ins may have logged (as failed loads); nothing else.
    errors = real_errors(recorder)
    assert len(errors) == 2 and all("403" in e for e in errors), errors


def test_served_with_csp_and_no_violation(open_page, org, base):
    with urllib.request.urlopen(base + "/console/", timeout=10) as response:
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    page, recorder = open_page()
    sign_in(page, org)  # the module scripts ran under the policy: the form was built
    page.goto(base + "/console/#/stacks")
    page.get_by_role("heading", name="Stacks", level=1).wait_for()
    # the console links to the API's OpenAPI description, served by this same server
    described = page.get_by_role("link", name="API description")
    assert described.get_attribute("href") == "/openapi.json"
    with urllib.request.urlopen(base + described.get_attribute("href"), timeout=10) as api:
        assert json.load(api)["openapi"].startswith("3.1")
    assert [text for _, text in recorder.console if "Content Security Policy" in text] == []
    assert_clean(recorder)
    # The policy is in force, and a violation would be seen: an inline script is refused.
    page.evaluate(
        """() => { const s = document.createElement("script");
                   s.textContent = "window.inlineRan = true"; document.body.append(s); }"""
    )
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.inlineRan") is None
    assert [text for _, text in recorder.console if "Content Security Policy" in text]


def test_gallery_search_paging_drop_and_names_as_text(open_page, org):
    for i in range(49):
        org.upload(png(24, 16, seed=100 + i), f"bulk-{i:02d}.png")
    hostile = org.upload(png(24, 16, seed=7), "<img src=x onerror=alert(1)>.png")
    page, recorder = open_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, org)
    page.get_by_text("Images 1–48 of 50").wait_for()
    assert page.locator(".gallery img").count() == 48
    # A name is text: shown as the alt text, never parsed as markup.
    page.get_by_role("img", name=hostile["name"], exact=True).wait_for()
    assert (
        page.locator(".gallery img").evaluate_all("l => l.map(i => i.alt)").count(hostile["name"])
        == 1
    )

    page.get_by_role("button", name="Next page").click()
    page.get_by_text("Images 49–50 of 50").wait_for()
    assert page.locator(".gallery img").count() == 2
    page.get_by_role("button", name="Previous page").click()
    page.get_by_text("Images 1–48 of 50").wait_for()

    search = page.get_by_label("Search", exact=True)
    search.fill("bulk-07")
    search.press("Enter")
    page.get_by_text("Images 1–1 of 1").wait_for()
    assert page.locator(".gallery img").get_attribute("alt") == "bulk-07.png"
    search.fill("name=bulk-1*&sort=name desc")
    search.press("Enter")
    page.get_by_text("Images 1–10 of 10").wait_for()
    assert page.locator(".gallery img").first.get_attribute("alt") == "bulk-19.png"
    search.fill("size=big")
    search.press("Enter")
    page.get_by_role("alert").get_by_text("Search:").wait_for()

    # Drag and drop of a file onto the gallery uploads it.
    search.fill("")
    search.press("Enter")
    page.get_by_text("Images 1–48 of 50").wait_for()
    page.evaluate(
        """bytes => {
            const data = new DataTransfer();
            data.items.add(new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"}));
            const zone = document.querySelector(".dropzone");
            const init = {dataTransfer: data, bubbles: true, cancelable: true};
            zone.dispatchEvent(new DragEvent("dragover", init));
            zone.dispatchEvent(new DragEvent("drop", init));
        }""",
        list(png(40, 30, seed=999)),
    )
    page.get_by_text("Images 1–48 of 51").wait_for()
    page.get_by_role("img", name="dropped.png", exact=True).wait_for()
    status, listing = org.call("GET", f"/sourceimages/{org.name}?name=dropped.png")
    assert listing["total"] == 1
    assert dialogs == []
    assert not [u for u in recorder.requests if u.endswith("/x") or "/console/x" in u]
    # The refused search (size=big) is the only error the page may have logged.
    errors = real_errors(recorder)
    assert len(errors) == 1 and "400" in errors[0], errors


def test_keyboard_reaches_every_control_and_draws(open_page, org):
    image = org.upload(feature_jpeg(), "keys.jpg")
    page, recorder = open_page()
    sign_in(page, org)

    def tab_names(count: int) -> set[str]:
        names = set()
        for _ in range(count):
            page.keyboard.press("Tab")
            names.add(
                page.evaluate(
                    """() => { const e = document.activeElement;
                    const label = e.labels && e.labels.length ? e.labels[0].textContent : "";
                    const img = e.querySelector("img");
                    return (label || e.getAttribute("aria-label") || e.textContent
                            || (img && img.alt) || "").trim(); }"""
                )
            )
        return names

    gallery_names = tab_names(14)
    assert {"Search", "Upload", "Sign out", "Images", "Stacks"} <= gallery_names, gallery_names
    assert any(name == "keys.jpg" for name in gallery_names)  # the thumbnail's link

    page.goto(f"{org.base}/console/#/images/{image['hash']}")
    page.get_by_role("heading", name="keys.jpg", level=1).wait_for()
    names = tab_names(24)
    wanted = {"Subject area", "Crop area", "Area name", "Named area type", "Named area"}
    assert wanted | {"X", "Y", "Width", "Height"} <= names, names

    # Draw with the keyboard only: type the area, move it with an arrow key, Save.
    page.get_by_role("button", name="Subject area", exact=True).focus()
    page.keyboard.press("Enter")
    page.get_by_label("X", exact=True).focus()
    for value in ("690", "340", "120", "120"):
        page.keyboard.type(value)
        page.keyboard.press("Tab")
    page.locator(".box").focus()
    page.keyboard.press("ArrowRight")  # one percent of the width: 20 px
    assert area_fields(page) == {"x": 710, "y": 340, "width": 120, "height": 120}
    page.get_by_label("Delete the previous version").focus()
    page.keyboard.press("Space")
    page.get_by_role("button", name="Save", exact=True).focus()
    page.keyboard.press("Enter")
    wait_saved(page)
    saved = org.image(page.locator("code.hash").inner_text())
    assert saved["dynamic_metadata"]["subject_area"] == {
        "x": 710, "y": 340, "width": 120, "height": 120
    }  # fmt: skip
    # ticked, the image under the old hash is deleted (restorable, not listed)
    assert org.call("GET", f"/sourceimages/{org.name}/{image['hash']}")[0] == 404
    assert_clean(recorder)


def test_narrow_touch_screen(open_page, org, tmp_path):
    image = org.upload(feature_jpeg(), "phone.jpg")
    page, recorder = open_page(
        viewport={"width": 360, "height": 740}, has_touch=True, is_mobile=True
    )
    sign_in(page, org)
    page.get_by_role("img", name="phone.jpg", exact=True).wait_for()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    screenshot(page, "phone-gallery", tmp_path)

    page.get_by_role("link", name="phone.jpg", exact=True).tap()
    page.get_by_role("heading", name="phone.jpg", level=1).wait_for()
    loaded(page, "img.picture")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    for name in ("Subject area", "Crop area", "Named area", "Save", "Remove"):
        button = page.get_by_role("button", name=name, exact=True)
        button.scroll_into_view_if_needed()
        assert button.is_visible()

    # Draw a crop area with a finger (touch events, as a phone sends them).
    page.get_by_role("button", name="Crop area", exact=True).tap()
    page.locator("img.picture").scroll_into_view_if_needed()
    box = page.locator("img.picture").bounding_box()
    cdp = page.context.new_cdp_session(page)
    x, y, w, h = FEATURE
    margin = 25
    start = screen_point(box, x - margin, y - margin)
    end = screen_point(box, x + w + margin, y + h + margin)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [
        {"x": start[0], "y": start[1]}]})  # fmt: skip
    for step in range(1, 9):
        px = start[0] + (end[0] - start[0]) * step / 8
        py = start[1] + (end[1] - start[1]) * step / 8
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [
            {"x": px, "y": py}]})  # fmt: skip
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    tolerance = PICTURE[0] / box["width"] + 1
    drawn = area_fields(page)
    assert abs(drawn["x"] - (x - margin)) <= tolerance, drawn
    assert abs(drawn["width"] - (w + 2 * margin)) <= 2 * tolerance, drawn
    screenshot(page, "phone-detail", tmp_path, full_page=True)
    page.get_by_role("button", name="Save", exact=True).tap()
    wait_saved(page)
    saved = org.image(page.locator("code.hash").inner_text())
    assert saved["hash"] != image["hash"]
    assert_covers_feature(saved["dynamic_metadata"]["crop_area"], slack=margin + 2 * tolerance)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    page.goto(f"{org.base}/console/#/stacks/new")
    loaded(page, 'img[alt="Live preview of the new stack"]')
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    assert_clean(recorder)


def test_named_area_and_stack_previews(open_page, org):
    image = org.upload(feature_jpeg(), "named.jpg")
    status, _ = org.call(
        "PUT",
        f"/stacks/{org.name}/wide",
        json.dumps({"operations": [
            {"name": "crop", "options": {"width": 16, "height": 9, "mode": "ratio"}},
            {"name": "resize", "options": {"width": 320}}]}).encode(),
        "application/json",
    )  # fmt: skip
    assert status == 201
    page, recorder = open_page()
    sign_in(page, org)
    page.goto(f"{org.base}/console/#/images/{image['hash']}")
    loaded(page, "img.picture")
    page.get_by_label("Area name", exact=True).fill("hero")
    page.get_by_role("button", name="Named area", exact=True).click()
    page.get_by_label("X", exact=True).fill("690")
    page.get_by_label("Y", exact=True).fill("340")
    page.get_by_label("Width", exact=True).fill("120")
    page.get_by_label("Height", exact=True).fill("120")
    page.get_by_label("Height", exact=True).press("Tab")
    page.get_by_role("button", name="Save", exact=True).click()
    wait_saved(page)
    new_hash = page.locator("code.hash").inner_text()
    hero = org.image(new_hash)["dynamic_metadata"]["multi_areas"]["hero"]
    assert hero == {"subject_area": {"x": 690, "y": 340, "width": 120, "height": 120}}
    # The view of the new hash keeps drawing the named area; previews use area-hero.
    assert page.get_by_role("button", name="Named area").get_attribute("aria-pressed") == "true"
    page.wait_for_function(
        "h => document.querySelector('img[data-ratio=\"16:9\"]').src.endsWith(h + '.jpg')",
        arg=new_hash,
    )
    assert "-area-hero" in preview_src(page, "16:9")
    loaded(page, 'img[data-ratio="16:9"]')
    cx, _, _, _ = red_centre(fetch_bytes(preview_src(page, "16:9")))
    assert abs(cx - 0.5) < 0.03

    # User metadata is edited as JSON and saved without changing the hash.
    page.get_by_label("User metadata (JSON)", exact=True).fill('{"int:rating": 4, "tag": "x"}')
    page.get_by_role("button", name="Save user metadata").click()
    page.get_by_text("User metadata saved (the hash stays the same).").wait_for()
    assert org.image(new_hash)["user_metadata"] == {"int:rating": 4, "tag": "x"}
    page.get_by_label("User metadata (JSON)", exact=True).fill('{"int:rating": "four"}')
    page.get_by_role("button", name="Save user metadata").click()
    page.get_by_text("Not saved: ").wait_for()  # the API's 400 message
    assert org.image(new_hash)["user_metadata"] == {"int:rating": 4, "tag": "x"}

    # A stack of the organization, chosen from the list, previews through its render URL.
    page.get_by_label("Stack preview", exact=True).select_option("wide")
    stack_img = page.get_by_role("img", name="Stack wide preview")
    loaded(page, 'img[alt="Stack wide preview"]')
    assert stack_img.evaluate("i => i.src") == f"{org.base}/{org.name}/wide/{new_hash}.jpg"
    assert stack_img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [320, 180]
    # The refused metadata (400) is the only error the page may have logged.
    errors = real_errors(recorder)
    assert len(errors) == 1 and "400" in errors[0], errors


def test_stacks_list_view_and_create_with_live_preview(open_page, org, tmp_path):
    image = org.upload(feature_jpeg(), "stacked.jpg")
    page, recorder = open_page()
    sign_in(page, org)
    page.get_by_role("link", name="Stacks", exact=True).click()
    page.get_by_role("heading", name="Stacks", level=1).wait_for()
    page.get_by_text("No stacks yet.").wait_for()
    page.get_by_role("link", name="New stack").click()
    page.get_by_label("Stack name", exact=True).fill("square")
    operations = [
        {"name": "resize", "options": {"width": 200, "height": 200, "mode": "fill"}},
        {"name": "crop", "options": {"width": 200, "height": 200}},
    ]
    page.get_by_label("Operations (JSON)", exact=True).fill(json.dumps(operations))
    page.wait_for_function(
        "() => document.querySelector('img[alt=\"Live preview of the new stack\"]').src"
        ".includes('/dynamic/resize-width-200-height-200-mode-fill--crop-width-200-height-200/')"
    )
    loaded(page, 'img[alt="Live preview of the new stack"]')
    live = page.get_by_role("img", name="Live preview of the new stack")
    assert live.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [200, 200]
    screenshot(page, "new-stack", tmp_path, full_page=True)

    # A broken definition says why, from the server's answer.
    page.get_by_label("Operations (JSON)", exact=True).fill(
        json.dumps([{"name": "resize", "options": {"width": 0}}])
    )
    page.get_by_text("Could not render: ").wait_for()
    page.get_by_label("Operations (JSON)", exact=True).fill(json.dumps(operations))

    page.get_by_role("button", name="Create stack").click()
    page.get_by_role("heading", name="Stack square", level=1).wait_for()
    status, stored = org.call("GET", f"/stacks/{org.name}/square")
    assert status == 200
    assert [op["name"] for op in stored["stack_operations"]] == ["resize", "crop"]
    loaded(page, 'img[alt="Stack square preview"]')
    shown = page.get_by_role("img", name="Stack square preview")
    assert shown.evaluate("i => i.src") == f"{org.base}/{org.name}/square/{image['hash']}.jpg"
    page.get_by_role("link", name="← All stacks").click()
    page.get_by_role("link", name="square", exact=True).wait_for()
    # The broken preview's 400 is the only error the page may have logged.
    errors = real_errors(recorder)
    assert all("400" in e for e in errors), errors


def test_protected_image_previews_are_signed(open_page, org):
    status, _ = org.call("POST", f"/organizations/{org.name}/signing_keys")
    assert status in (200, 201)
    image = org.upload(feature_jpeg(), "secret.jpg")
    status, protected = org.call(
        "PUT", f"/sourceimages/{org.name}/{image['hash']}/options/protected?deletePrevious=true",
        b"true",
        "application/json",
    )  # fmt: skip
    assert status == 201, protected
    page, recorder = open_page()
    sign_in(page, org)
    loaded(page, 'img[alt="secret.jpg"]')
    page.get_by_role("link", name="secret.jpg", exact=True).click()
    loaded(page, "img.picture")
    loaded(page, 'img[data-ratio="16:9"]')
    src = preview_src(page, "16:9")
    assert "sig=" in src and protected["hash"] in src
    # unsigned, the same render is refused: the signature is what made it load
    unsigned = src.split("?", 1)[0]
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch_bytes(unsigned)
    assert refused.value.code == 403
    assert_clean(recorder)


def test_deleting_the_key_signs_the_tab_out(open_page, org):
    """The console's token dies with the key that obtained it (docs/accounts.md)."""
    status, second = org.call("POST", "/user/apikeys", b"{}", "application/json")
    assert status == 200
    page, recorder = open_page()
    sign_in(page, Org(org.base, org.name, second["api_key"]))
    status, _ = org.call("DELETE", f"/user/apikeys/{second['id']}")
    assert status == 204
    page.get_by_role("link", name="Stacks", exact=True).click()
    page.get_by_role("heading", name="Sign in", level=1).wait_for()
    page.get_by_role("alert").get_by_text("Signed out (sign in again): ").wait_for()
    assert page.evaluate("() => sessionStorage.length") == 0
    # the refused call (401) is the only error the page may have logged
    errors = real_errors(recorder)
    assert len(errors) == 1 and "401" in errors[0], errors
