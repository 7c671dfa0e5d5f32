"""Face detection through the API: ``PUT …/meta/dynamic/detection_face`` runs the detector
in a render process on a real photograph (scikit-image's bundled ``astronaut.png``, read
from the installed package, nothing downloaded), and the stored boxes steer ``crop``
(``anchor-face``, the ``auto`` chain) and ``image.detection_face.*`` expressions."""

from __future__ import annotations

import io
import json
from importlib import resources
from urllib.parse import quote

import numpy as np
import pytest
import pyvips
from PIL import Image

from tests.conftest import Account
from tests.engine.conftest import decode, scene
from tests.engine.conftest import png as png_of
from tests.webapp.images import cmyk_jpeg, gif, png16
from tests.webapp.images import png as small_png
from tests.webapp.test_sources import heic, jxl, pdf, psd
from webapp import create_app

# The astronaut's face in astronaut.png (512 x 512), eyebrows to chin, measured by eye on
# the picture: x, y, width, height in pixels.
FACE = (180, 70, 90, 100)


def astronaut() -> bytes:
    """The photograph's bytes as the scikit-image wheel ships them."""
    return (resources.files("skimage.data") / "astronaut.png").read_bytes()


def astronaut_pixels() -> np.ndarray:
    return decode(astronaut())[..., :3]


def upload(account: Account, data: bytes, name: str = "photo.png") -> dict:
    form = {"filedata": (io.BytesIO(data), name)}
    response = account.request(
        "POST", f"/sourceimages/{account.org}", data=form, content_type="multipart/form-data"
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["items"][0]


def detect(account: Account, image_hash: str, body: str = ""):  # noqa: ANN201
    return account.request(
        "PUT", f"/sourceimages/{account.org}/{image_hash}/meta/dynamic/detection_face", data=body
    )


def detected(account: Account, data: bytes, name: str = "photo.png") -> tuple[dict, dict]:
    """(uploaded image, image after detection) for ``data``."""
    image = upload(account, data, name)
    response = detect(account, image["hash"])
    assert response.status_code == 201, response.get_data(as_text=True)
    after = response.get_json()
    assert response.headers["Location"] == f"/sourceimages/{account.org}/{after['hash']}"
    return image, after


def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x, y, width, height) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def box_of(stored: dict) -> tuple[int, int, int, int]:
    return stored["x"], stored["y"], stored["width"], stored["height"]


def render(account: Account, ops: str, image_hash: str, stack: str = "dynamic") -> np.ndarray:
    """The decoded pixels of ``/{org}/{stack}/{ops}/{hash}.png`` (no ops: the stack alone)."""
    path = "/".join(part for part in (account.org, stack, ops, f"{image_hash}.png") if part)
    response = account.request("GET", "/" + path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return decode(response.data)[..., :3]


def crop_at(pixels: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    return pixels[y : y + h, x : x + w]


def centred(box: tuple[float, ...], w: int, h: int, size: int = 512) -> tuple[int, int]:
    """Top-left of a w x h crop centred on ``box``, kept inside a size x size image."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    x = min(max(round(cx - w / 2), 0), size - w)
    y = min(max(round(cy - h / 2), 0), size - h)
    return x, y


def assert_same_as_crop(out: np.ndarray, source: np.ndarray, x: int, y: int) -> None:
    """``out`` is the crop of ``source`` at (x, y), give or take one pixel of rounding."""
    h, w = out.shape[:2]
    best = min(
        float(np.abs(crop_at(source, x + dx, y + dy, w, h).astype(int) - out).mean())
        for dx in (-1, 0, 1)
        for dy in (-1, 0, 1)
        if x + dx >= 0 and y + dy >= 0 and crop_at(source, x + dx, y + dy, w, h).shape == out.shape
    )
    assert best < 1.0, f"output is not the crop at ({x}, {y}): mean difference {best:.1f}"


# -- detection ---------------------------------------------------------------------------


def test_detection_finds_the_astronauts_face_and_stores_it_under_a_new_hash(account):
    image, after = detected(account, astronaut())
    stored = after["dynamic_metadata"]["detection_face"]
    assert after["hash"] != image["hash"]
    assert after["binary_hash"] == image["binary_hash"]
    assert len(stored["faces"]) == 1
    assert overlap(box_of(stored), FACE) > 0.5, stored
    assert box_of(stored["faces"][0]) == box_of(stored)
    # GET shows the same metadata; the image it was detected on is still there.
    shown = account.request("GET", f"/sourceimages/acme/{after['hash']}").get_json()
    assert shown["dynamic_metadata"] == {
        "detection_face": stored,
        "detection_eyemouth": after["dynamic_metadata"]["detection_eyemouth"],
    }
    old = account.request("GET", f"/sourceimages/acme/{image['hash']}")
    assert old.status_code == 200 and old.get_json()["dynamic_metadata"] == {}
    # Detecting again finds the same: unchanged, 204.
    assert detect(account, after["hash"]).status_code == 204


def test_detection_body_may_be_empty_or_an_empty_object(account):
    image = upload(account, astronaut())
    assert detect(account, image["hash"], "{}").status_code == 201
    assert detect(account, image["hash"], "null").status_code == 201  # same hash: exists
    refused = detect(account, image["hash"], '{"x": 1}')
    assert refused.status_code == 400
    assert "detection_face" in refused.get_json()["error"]["message"]


def test_detection_honours_delete_previous_and_delete_removes_it(account):
    image = upload(account, astronaut())
    path = f"/sourceimages/acme/{image['hash']}/meta/dynamic/detection_face"
    response = account.request("PUT", path + "?deletePrevious=true")
    assert response.status_code == 201
    new_hash = response.get_json()["hash"]
    assert account.request("GET", f"/sourceimages/acme/{image['hash']}").status_code == 404
    removed = account.request(
        "DELETE", f"/sourceimages/acme/{new_hash}/meta/dynamic/detection_face"
    )
    assert removed.status_code == 201
    assert removed.get_json()["dynamic_metadata"] == {}
    assert removed.get_json()["hash"] == image["hash"]


def test_detection_needs_write_permission_and_an_existing_image(account, member):
    image = upload(account, astronaut())
    reader = member("acme", ["read"])
    denied = detect(reader, image["hash"])
    assert denied.status_code == 403
    assert denied.get_json()["error"]["code"] == 403
    missing = detect(account, "0" * 40)
    assert missing.status_code == 404


def test_faces_in_an_exif_rotated_photo_are_found_in_display_coordinates(account):
    # The pixels are stored turned a quarter; EXIF orientation 8 turns them back.
    turned = pyvips.Image.new_from_buffer(astronaut(), "").rot90().copy()
    turned.set_type(pyvips.GValue.gint_type, "orientation", 8)
    _, after = detected(account, bytes(turned.jpegsave_buffer(Q=95)), "turned.jpg")
    assert (after["width"], after["height"]) == (512, 512)
    stored = after["dynamic_metadata"]["detection_face"]
    assert overlap(box_of(stored), FACE) > 0.5, stored


def test_an_image_without_faces_stores_an_empty_list(account):
    flat = png_of(scene(400, 300, square=(20, 20, 60)))
    image, after = detected(account, flat, "flat.png")
    assert after["dynamic_metadata"] == {
        "detection_face": {"faces": []},
        "detection_eyemouth": {"faces": []},
    }
    assert after["hash"] != image["hash"]


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (cmyk_jpeg(), "cmyk.jpg"),
        (png16(), "deep.png"),
        (small_png(64, 48, alpha=True), "alpha.png"),
        (gif(3, 40), "anim.gif"),
        (small_png(1, 1), "dot.png"),
    ],
)
def test_detection_reads_every_kind_of_source(account, data, name):
    _, after = detected(account, data, name)
    assert after["dynamic_metadata"]["detection_face"] == {"faces": []}


@pytest.mark.parametrize("make", [jxl, psd, heic, pdf], ids=["jxl", "psd", "heic", "pdf"])
def test_faces_in_sources_libvips_cannot_read_are_found(account, make):
    picture = Image.open(io.BytesIO(astronaut())).convert("RGB")
    image, after = detected(account, make(picture), "photo")
    stored = after["dynamic_metadata"]["detection_face"]
    # A PDF page is stored (and rendered) at its rendering size: the box scales with it.
    scale = image["width"] / 512
    assert overlap(box_of(stored), tuple(v * scale for v in FACE)) > 0.5, stored


def test_detection_past_the_render_work_budget_is_400_and_changes_nothing(tmp_path):
    # The small photo's detection costs ~90 passes (frontal scan 24, profile scans 25,
    # landmarks of up to 8 faces 40), the big one's (scanned at 1024 px) over 160.
    app = create_app({"data_dir": str(tmp_path / "d"), "max_render_work": 150})
    account = Account(app.test_client(), "acme", "admin@acme.example")
    small = upload(account, astronaut())
    assert detect(account, small["hash"]).status_code == 201
    photo = pyvips.Image.new_from_buffer(astronaut(), "").resize(6)  # 3072 x 3072
    big = upload(account, bytes(photo.jpegsave_buffer(Q=80)), "big.jpg")
    refused = detect(account, big["hash"])
    assert refused.status_code == 400, refused.get_data(as_text=True)
    error = refused.get_json()["error"]
    assert error["code"] == 400 and "too expensive" in error["message"]
    listed = account.request("GET", "/sourceimages/acme").get_json()
    assert listed["total"] == 3  # the two uploads and the small one's detection


# -- crops ---------------------------------------------------------------------------------


def test_crop_anchor_face_keeps_the_face(account):
    original, after = detected(account, astronaut())
    box = box_of(after["dynamic_metadata"]["detection_face"])
    out = render(account, "crop-width-120-height-120-anchor-face", after["hash"])
    assert out.shape[:2] == (120, 120)
    x, y = centred(box, 120, 120)
    assert_same_as_crop(out, astronaut_pixels(), x, y)
    # The crop holds the middle of the face (measured by eye), not the image centre.
    face_cx, face_cy = FACE[0] + FACE[2] / 2, FACE[1] + FACE[3] / 2
    assert x <= face_cx <= x + 120 and y <= face_cy <= y + 120
    # Without detection, anchor face falls back to center_center.
    plain = render(account, "crop-width-120-height-120-anchor-face", original["hash"])
    assert_same_as_crop(plain, astronaut_pixels(), 196, 196)


def test_auto_anchor_uses_the_face_when_there_is_no_subject_area(account):
    original, after = detected(account, astronaut())
    box = box_of(after["dynamic_metadata"]["detection_face"])
    auto = render(account, "crop-width-160-height-100", after["hash"])
    assert_same_as_crop(auto, astronaut_pixels(), *centred(box, 160, 100))
    before = render(account, "crop-width-160-height-100", original["hash"])
    assert_same_as_crop(before, astronaut_pixels(), 176, 206)


def test_subject_area_wins_over_the_face_and_crop_area_too(account):
    _, after = detected(account, astronaut())
    box = box_of(after["dynamic_metadata"]["detection_face"])
    subject = {"x": 400, "y": 400, "width": 20, "height": 20}
    response = account.request(
        "PUT",
        f"/sourceimages/acme/{after['hash']}/meta/dynamic/subject_area",
        data=json.dumps(subject),
    )
    assert response.status_code == 201
    both = response.get_json()
    assert set(both["dynamic_metadata"]) == {"detection_face", "detection_eyemouth", "subject_area"}
    auto = render(account, "crop-width-120-height-120", both["hash"])
    assert_same_as_crop(auto, astronaut_pixels(), 350, 350)
    # anchor face still picks the face on the same image
    face = render(account, "crop-width-120-height-120-anchor-face", both["hash"])
    assert_same_as_crop(face, astronaut_pixels(), *centred(box, 120, 120))
    # a crop area also comes before the face in the auto chain
    area = {"x": 0, "y": 300, "width": 100, "height": 80}
    response = account.request(
        "PUT",
        f"/sourceimages/acme/{after['hash']}/meta/dynamic/crop_area",
        data=json.dumps(area),
    )
    assert response.status_code == 201
    cut = render(account, "crop-width-120-height-120", response.get_json()["hash"])
    assert cut.shape[:2] == (80, 100)
    assert_same_as_crop(cut, astronaut_pixels(), 0, 300)


def test_face_box_follows_a_resize_before_the_crop(account):
    _, after = detected(account, astronaut())
    box = box_of(after["dynamic_metadata"]["detection_face"])
    out = render(account, "resize-width-256--crop-width-60-height-60-anchor-face", after["hash"])
    half = pyvips.Image.new_from_buffer(astronaut(), "").resize(0.5).numpy()[..., :3]
    x, y = centred(tuple(v / 2 for v in box), 60, 60, size=256)
    assert_same_as_crop(out, half, x, y)


# -- expressions ---------------------------------------------------------------------------


def test_expressions_read_the_face_box_and_its_alias(account):
    original, after = detected(account, astronaut())
    box = box_of(after["dynamic_metadata"]["detection_face"])
    ops = quote(
        "crop-anchor-face-width-[image.detection_face.width*2]"
        "-height-[image.face_detection.height+image.detection_face.y]"
    )
    out = render(account, ops, after["hash"])
    assert out.shape[:2] == (box[3] + box[1], box[2] * 2)


# rokka's face-crop stack from its operations reference (circlemask left out: only the
# crop size matters here). The variable is rokka's, in brackets: cropstack reads a variable
# as an expression only when it names a $variable or is bracketed (docs/stacks.md).
FACE_STACK = {
    "operations": [
        {
            "name": "crop",
            "options": {"anchor": "face"},
            "expressions": {"width": "$cropwidth", "height": "$cropwidth"},
        },
        {"name": "resize", "options": {"width": 150}},
    ],
    "variables": {
        "cropwidth": "[image.hasDetectionFace ? image.detection_face.height * 1.5 : "
        "(image.height > image.width ? image.width : image.height) ]"
    },
}


def test_rokkas_face_stack_crops_around_the_face_only_after_detection(account):
    original, after = detected(account, astronaut())
    box = box_of(after["dynamic_metadata"]["detection_face"])
    created = account.request("PUT", "/stacks/acme/face", data=json.dumps(FACE_STACK))
    assert created.status_code in (200, 201), created.get_data(as_text=True)
    # Without detection: the whole (square) image, resized.
    whole = render(account, "", original["hash"], stack="face")
    small = pyvips.Image.new_from_buffer(astronaut(), "").resize(150 / 512).numpy()[..., :3]
    assert whole.shape[:2] == (150, 150)
    assert np.abs(small.astype(int) - whole).mean() < 8
    side = box[3] * 1.5
    out = render(account, "", after["hash"], stack="face")
    assert out.shape[:2] == (150, 150)
    # The face fills the output: the crop was about 1.5 face heights, not 512 px.
    x, y = centred(box, round(side), round(side))
    expected = (
        pyvips.Image.new_from_buffer(astronaut(), "")
        .crop(x, y, round(side), round(side))
        .resize(150 / round(side))
        .numpy()[..., :3]
    )
    assert np.abs(expected.astype(int) - out).mean() < 8


def test_without_detection_expressions_see_no_face(account):
    image = upload(account, astronaut())
    ops = quote("crop-width-[image.hasDetectionFace ? 10 : 20]-height-20")
    assert render(account, ops, image["hash"]).shape[:2] == (20, 20)
    flat = png_of(scene(400, 300))
    _, none = detected(account, flat, "flat.png")
    assert render(account, ops, none["hash"]).shape[:2] == (20, 20)


def test_detection_face_cannot_be_sent_with_an_upload(account):
    form = {
        "filedata": (io.BytesIO(astronaut()), "photo.png"),
        "meta_dynamic[0][detection_face]": json.dumps({"x": 1, "y": 1, "width": 9, "height": 9}),
    }
    response = account.request(
        "POST", "/sourceimages/acme", data=form, content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert "detection_face is detected" in response.get_json()["error"]["message"]
    assert account.request("GET", "/sourceimages/acme").get_json()["total"] == 0


def test_a_render_memory_cap_too_small_for_the_detector_is_a_503_that_says_so(tmp_path):
    app = create_app({"data_dir": str(tmp_path / "d"), "render_memory_mb": 384})
    account = Account(app.test_client(), "acme", "admin@acme.example")
    image = upload(account, astronaut())
    refused = detect(account, image["hash"])
    assert refused.status_code == 503
    assert refused.get_json()["error"] == {
        "code": 503,
        "message": "face detection is unavailable: render processes have too little memory "
        "for the detector on this server",
    }
    # Renders, which need no detector, still work in the same render process.
    assert render(account, "resize-width-64", image["hash"]).shape[:2] == (64, 64)
