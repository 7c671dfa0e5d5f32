"""The ``face`` operation through the API on a real photograph (scikit-image's bundled
astronaut): ``PUT …/meta/dynamic/detection_face`` also stores the eye and mouth landmarks
(``detection_eyemouth``), and ``face`` puts a secondary image of the organization onto
them, in render URLs and stored stacks alike; what it refuses is a 400 that says why."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import pyvips

from tests.engine.conftest import png
from tests.webapp.test_faces import astronaut, astronaut_pixels, detect, detected, upload

# The astronaut's eye centres and the middle of her lips, measured by eye on the picture
# (astronaut.png, 512 x 512), px.
EYE_LEFT, EYE_RIGHT, MOUTH = (201, 101), (247, 104), (222, 142)
MAGENTA = (255, 0, 255)
OPS = "face-secondary_image-{mark}-leftFeature-eyeLeft-rightFeature-eyeRight"


def magenta_mask(pixels: np.ndarray) -> np.ndarray:
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return (r > 200) & (g < 70) & (b > 200)


def get(account, path: str):  # noqa: ANN001, ANN201
    return account.request("GET", path)


def rendered(account, ops: str, image_hash: str, stack: str = "dynamic") -> np.ndarray:  # noqa: ANN001
    path = "/".join(p for p in (account.org, stack, ops, f"{image_hash}.png") if p)
    response = get(account, "/" + path)
    assert response.status_code == 200, response.get_data(as_text=True)
    image = pyvips.Image.new_from_buffer(response.data, "")
    return np.ndarray(
        buffer=image.write_to_memory(),
        dtype=np.uint8,
        shape=(image.height, image.width, image.bands),
    )[..., :3]


def error(response, status: int) -> str:  # noqa: ANN001
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert body["error"]["code"] == status
    return body["error"]["message"]


@pytest.fixture
def photo(account) -> tuple[str, str, dict]:  # noqa: ANN001
    """(hash of the astronaut before detection, after detection, 60 x 20 magenta mark)."""
    image, after = detected(account, astronaut())
    bar = pyvips.Image.black(60, 20) + list(MAGENTA)
    mark = upload(account, png(bar.cast("uchar").copy(interpretation="srgb")), "mark.png")
    return image["hash"], after["hash"], mark


def near(point: tuple[float, float], expected: tuple[float, float], tolerance: float) -> bool:
    return abs(point[0] - expected[0]) <= tolerance and abs(point[1] - expected[1]) <= tolerance


def test_detection_stores_the_eyes_and_mouth_as_detection_eyemouth(account):
    _, after = detected(account, astronaut())
    stored = after["dynamic_metadata"]["detection_eyemouth"]
    (face,) = stored["faces"]
    eye_left = (face["eyeLeft"]["x"], face["eyeLeft"]["y"])
    eye_right = (face["eyeRight"]["x"], face["eyeRight"]["y"])
    assert near(eye_left, EYE_LEFT, 4) and near(eye_right, EYE_RIGHT, 4), face
    corners = (face["mouthLeft"]["x"] + face["mouthRight"]["x"]) / 2, face["mouthLeft"]["y"]
    assert near(corners, MOUTH, 6), face
    # The area: the box around every landmark, inside the face box.
    box = after["dynamic_metadata"]["detection_face"]
    assert box["x"] <= stored["x"] and stored["x"] + stored["width"] <= box["x"] + box["width"]
    assert stored["y"] >= box["y"] and stored["width"] >= eye_right[0] - eye_left[0]


def test_sunglasses_land_between_the_eyes_and_the_rest_is_untouched(account, photo):
    _, detected_hash, mark = photo
    out = rendered(account, OPS.format(mark=mark["hash"]) + "-scale-1.5", detected_hash)
    assert out.shape == (512, 512, 3)
    ys, xs = np.nonzero(magenta_mask(out))
    # 1.5 x the eye distance (46 px) wide, a third of that tall, centred between the eyes
    middle = ((EYE_LEFT[0] + EYE_RIGHT[0]) / 2, (EYE_LEFT[1] + EYE_RIGHT[1]) / 2)
    assert near((xs.mean(), ys.mean()), middle, 4)
    assert abs((xs.max() - xs.min() + 1) - 1.5 * 46) <= 6
    assert abs((ys.max() - ys.min() + 1) - 1.5 * 46 / 3) <= 6
    # it covers both eyes; away from it the photograph is as it was
    assert (
        magenta_mask(out)[EYE_LEFT[1], EYE_LEFT[0]]
        and magenta_mask(out)[EYE_RIGHT[1], EYE_RIGHT[0]]
    )
    original = astronaut_pixels()
    away = np.ones(out.shape[:2], dtype=bool)
    away[ys.min() - 3 : ys.max() + 4, xs.min() - 3 : xs.max() + 4] = False
    assert np.abs(out.astype(int) - original)[away].max() <= 2


def test_a_moustache_lands_on_the_mouth(account, photo):
    _, detected_hash, mark = photo
    ops = (
        f"face-secondary_image-{mark['hash']}-leftFeature-mouthLeft-rightFeature-mouthRight"
        "-anchor-center_bottom"
    )
    ys, xs = np.nonzero(magenta_mask(rendered(account, ops, detected_hash)))
    # bottom edge's middle on the middle of the mouth: above the lips, centred on them
    assert abs(xs.mean() - MOUTH[0]) <= 5
    assert abs(ys.max() - MOUTH[1]) <= 6


def test_the_landmarks_follow_a_resize_in_a_stored_stack(account, photo):
    _, detected_hash, mark = photo
    stack = {
        "operations": [
            {"name": "resize", "options": {"width": 256}},
            {
                "name": "face",
                "options": {
                    "secondary_image": mark["short_hash"],
                    "leftFeature": "eyeLeft",
                    "rightFeature": "eyeRight",
                },
            },
        ]
    }
    created = account.request("PUT", f"/stacks/{account.org}/shades", json=stack)
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.get_json()["stack_operations"][1]["options"]["leftFeature"] == "eyeLeft"
    out = rendered(account, "", detected_hash, stack="shades")
    assert out.shape == (256, 256, 3)
    ys, xs = np.nonzero(magenta_mask(out))
    middle = ((EYE_LEFT[0] + EYE_RIGHT[0]) / 4, (EYE_LEFT[1] + EYE_RIGHT[1]) / 4)
    assert near((xs.mean(), ys.mean()), middle, 3)
    assert abs((xs.max() - xs.min() + 1) - 23) <= 4  # half the eye distance, scale 1


def test_an_image_never_detected_is_a_400_that_says_what_to_do(account, photo):
    plain_hash, _, mark = photo
    message = error(
        get(account, f"/{account.org}/dynamic/{OPS.format(mark=mark['hash'])}/{plain_hash}.png"),
        400,
    )
    assert "detection_face" in message and "landmarks" in message


def test_a_photo_without_faces_is_returned_unchanged(account, photo):
    *_, mark = photo
    flat = pyvips.Image.black(120, 80) + [90, 120, 150]
    _, none = detected(account, png(flat.cast("uchar").copy(interpretation="srgb")), "flat.png")
    out = rendered(account, OPS.format(mark=mark["hash"]), none["hash"])
    assert not magenta_mask(out).any()
    assert np.abs(out.astype(int) - [90, 120, 150]).max() <= 1


@pytest.mark.parametrize(
    ("ops", "named"),
    [
        ("face-leftFeature-eyeLeft-rightFeature-eyeRight", "secondary_image"),
        ("face-secondary_image-{mark}-rightFeature-eyeRight", "leftFeature"),
        ("face-secondary_image-{mark}-leftFeature-nose-rightFeature-eyeRight", "leftFeature"),
        (
            "face-secondary_image-{mark}-leftFeature-eyeLeft-rightFeature-eyeRight-anchor-auto",
            "anchor",
        ),
        ("face-secondary_image-{mark}-leftFeature-eyeLeft-rightFeature-eyeLeft", "rightFeature"),
        ("face-secondary_image-{mark}-leftFeature-eyeLeft-rightFeature-eyeRight-scale-0", "scale"),
        ("face-secondary_image-{mark}-leftFeature-eyeLeft-rightFeature-eyeRight-scale-11", "scale"),
    ],
)
def test_bad_options_are_400_naming_them(account, photo, ops, named):
    _, detected_hash, mark = photo
    url = f"/{account.org}/dynamic/{ops.format(mark=mark['hash'])}/{detected_hash}.png"
    assert named in error(get(account, url), 400)


def test_a_secondary_that_is_not_there_is_not_found(account, photo):
    _, detected_hash, _ = photo
    url = f"/{account.org}/dynamic/{OPS.format(mark='ffffff')}/{detected_hash}.png"
    assert "ffffff" in error(get(account, url), 404)


def test_too_big_a_scale_for_the_image_is_a_400(account, photo):
    _, detected_hash, _ = photo
    square = pyvips.Image.black(20, 20) + list(MAGENTA)
    mark = upload(account, png(square.cast("uchar").copy(interpretation="srgb")), "sq.png")
    # 10 x the eye distance square: about 460 x 460 px of the 512 x 512 photo
    url = f"/{account.org}/dynamic/{OPS.format(mark=mark['hash'])}-scale-10/{detected_hash}.png"
    assert "scale" in error(get(account, url), 400)


def test_landmarks_are_derived_never_sent_and_go_with_the_detection(account, photo):
    plain_hash, detected_hash, _ = photo
    path = f"/sourceimages/{account.org}/{plain_hash}/meta/dynamic/detection_eyemouth"
    message = error(account.request("PUT", path, json={"faces": []}), 400)
    assert "detection_face" in message
    removed = account.request(
        "DELETE", f"/sourceimages/{account.org}/{detected_hash}/meta/dynamic/detection_face"
    )
    assert removed.status_code == 201
    assert removed.get_json()["dynamic_metadata"] == {}
    assert detect(account, plain_hash).status_code in (201, 204)


def test_operations_listing_describes_face(account):
    listed = get(account, "/operations").get_json()["face"]
    assert set(listed["required"]) == {"secondary_image", "leftFeature", "rightFeature"}
    props = listed["properties"]
    assert props["leftFeature"]["values"] == [
        "eyeLeft",
        "eyeRight",
        "mouthLeft",
        "mouthRight",
        "mouthUp",
        "mouthDown",
    ]
    assert props["scale"]["default"] == 1.0 and props["anchor"]["default"] == "center_center"


def test_a_profile_is_detected_and_steers_the_face_anchor(account):
    # scikit-image's cameraman, in profile: found by the profile cascade (mirrored), no
    # landmarks; a crop anchored on the face centres on him.
    camera = (resources.files("skimage.data") / "camera.png").read_bytes()
    _, after = detected(account, camera, "camera.png")
    stored = after["dynamic_metadata"]
    (face,) = stored["detection_face"]["faces"]
    assert (
        170 <= face["x"] + face["width"] / 2 <= 260 and 100 <= face["y"] + face["height"] / 2 <= 190
    )
    assert stored["detection_eyemouth"] == {"faces": []}
    out = rendered(account, "crop-width-100-height-100-anchor-face", after["hash"])
    x = round(face["x"] + face["width"] / 2 - 50)
    y = round(face["y"] + face["height"] / 2 - 50)
    original = pyvips.Image.new_from_buffer(camera, "").colourspace("srgb")
    expected = np.ndarray(
        buffer=original.crop(x, y, 100, 100).write_to_memory(), dtype=np.uint8, shape=(100, 100, 3)
    )
    assert np.abs(out.astype(int) - expected).mean() < 2
