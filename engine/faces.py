"""Face detection: where the faces (frontal and profile) of a source image are, and where
the eyes and mouth of the frontal ones are (the landmarks), in display pixels.

The detectors are OpenCV's Haar cascades, which the ``opencv-python-headless`` wheel ships
under ``cv2.data.haarcascades`` (nothing is downloaded at run time; README "Dependencies"
says why these): ``haarcascade_frontalface_alt2.xml`` finds upright frontal faces and
``haarcascade_profileface.xml`` upright profiles, run on the image and on its mirror image
(the cascade knows profiles looking one way only); a profile overlapping a frontal face or
a larger profile is the same face. Tiny, tilted or strongly turned-down faces are not
found. Inside each frontal face box (profiles get no landmarks), scaled to
``LANDMARK_FACE_PX`` wide, ``haarcascade_eye.xml`` looks for the eyes in the upper part and
``haarcascade_smile.xml`` for the mouth in the lower part (engine/landmarks.py turns the
boxes they return into rokka's named points, ``eyeLeft`` ...).

It runs in a render process (engine/worker.py, job ``faces``) under the same deadline and
memory cap as a render. The image is decoded the way a render with a leading
``resize-width-S-height-S-upscale-false`` decodes it (shrink-on-load, EXIF orientation
applied, ICC to sRGB, first frame of an animation; the formats engine/foreign.py reads are
decoded whole, as renders decode them), so the detector never sees more than
``DETECT_SIDE`` pixels a side, and the boxes are scaled back to the display size, the grid
every area of the image is stored on (engine/geometry.py).
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from functools import cache
from typing import Any

import pyvips

from engine import foreign, landmarks
from engine.cost import DEFAULT_MAX_PIXELS
from engine.geometry import Size
from engine.operations.context import to_srgb

#: The long side, px, an image is shrunk to (never enlarged) before detection.
DETECT_SIDE = 1024
#: Most faces kept (the largest); a crowd photo does not make metadata unbounded.
MAX_FACES = 32
#: Estimated megapixel passes (engine/cost.py units) of the cascade per megapixel it scans:
#: measured 0.6-0.9 s for 1 MP on one core here, i.e. 60-90 passes of ~10 ms.
CASCADE_PASSES_PER_MP = 90.0
#: Address space (RLIMIT_AS, ``render_memory_mb``) a render process needs to load OpenCV
#: (about 250 MB of libraries mapped) and detect, MiB. Below it detection is refused
#: before the import: a failed half-loaded import was seen to break later PNG renders.
MIN_ADDRESS_SPACE_MB = 512
#: The long side, px, the image is shrunk to (never enlarged) for the profile scans:
#: profiles are looked for more coarsely than frontal faces (the smallest found is ~6 %
#: of the long side), which keeps both directions together within about the frontal
#: scan's time (the cascade is slower per pixel).
PROFILE_SIDE = 320
_PROFILE_SCALE_FACTOR = 1.1
#: Estimated megapixel passes of the profile cascade per megapixel it scans (at
#: ``PROFILE_SIDE``), per direction: measured at 1.3 times the frontal cascade's.
PROFILE_PASSES_PER_MP = 120.0
#: The cascade files inside opencv-python-headless: faces, then eyes and mouth inside them.
CASCADE = "haarcascade_frontalface_alt2.xml"
PROFILE_CASCADE = "haarcascade_profileface.xml"
#: A profile hit is dropped as the same face when it covers this share of a face kept
#: before it (a frontal face, or a larger profile), or that face covers this share of it.
SAME_FACE_SHARE = 0.3
EYE_CASCADE = "haarcascade_eye.xml"
MOUTH_CASCADE = "haarcascade_smile.xml"
#: Width (px) a face box is scaled to before its eyes and mouth are looked for: the
#: landmark scans then cost the same for every face (40-100 ms here, the face scan of a
#: 512 x 512 image 200-500 ms).
LANDMARK_FACE_PX = 128
#: Landmarks are looked for in at most this many faces (the largest): enough for a group
#: photo, and it bounds the work (``LANDMARK_PASSES_PER_FACE`` each).
MAX_LANDMARK_FACES = 8
#: Estimated megapixel passes of the eye and mouth scans of one face: measured at a fifth
#: of the face scan of a 512 x 512 image (0.26 MP x CASCADE_PASSES_PER_MP / 5).
LANDMARK_PASSES_PER_FACE = 5.0
# Detector tuning. scaleFactor 1.1 is the usual step between window sizes; 5 neighbours
# (overlapping hits) keeps the cascade's false positives on textures (coins, retina
# photographs) out while the test photographs' faces are still found.
_SCALE_FACTOR = 1.1
_MIN_NEIGHBOURS = 5
# Faces smaller than this share of the short side (at detection size) are not looked
# for: they cost most of the scan and are too small to steer a crop.
_MIN_FACE_SHARE = 0.03
_MIN_FACE_PX = 20


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face: its box in display pixels of the source image (whole pixels,
    inside the image, width and height >= 1)."""

    x: int
    y: int
    width: int
    height: int
    #: (name, x, y) of the landmarks found (engine/landmarks.py FEATURES), display pixels.
    landmarks: tuple[tuple[str, float, float], ...] = ()


def detection_size(size: Size, side: int = DETECT_SIDE) -> Size:
    """The size (px) detection runs at for a source of display ``size``: the long side
    shrunk to ``side`` at most, aspect kept (as ``resize`` box mode without upscale)."""
    scale = min(1.0, side / max(size.width, size.height))
    return Size(max(1, round(size.width * scale)), max(1, round(size.height * scale)))


def cascade_work(size: Size) -> float:
    """Estimated megapixel passes of scanning an image of ``size`` (detection size) for
    faces, plus the landmark scans of the most faces they are run on."""
    frontal = size.pixels / 1e6 * CASCADE_PASSES_PER_MP
    profiles = 2 * detection_size(size, PROFILE_SIDE).pixels / 1e6 * PROFILE_PASSES_PER_MP
    return frontal + profiles + MAX_LANDMARK_FACES * LANDMARK_PASSES_PER_FACE


def detector_fits() -> bool:
    """Whether this process's address-space limit leaves room for the detector."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return soft == resource.RLIM_INFINITY or soft >= MIN_ADDRESS_SPACE_MB * 1024 * 1024


def _load_cv2() -> Any:
    """OpenCV, loaded on first use: only render processes that detect faces carry it.

    Its bundled OpenBLAS reserves buffers for one thread per core when it loads (180 MB of
    address space on this machine, counted against the render process's RLIMIT_AS); the
    detector uses no BLAS, so one thread is asked for first.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import cv2

    return cv2


@cache
def _classifier(name: str = CASCADE) -> Any:
    cv2 = _load_cv2()

    classifier = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if classifier.empty():
        raise RuntimeError(f"OpenCV cascade {name} could not be loaded")
    return classifier


def _grey(source: bytes, target: Size, fmt: str, max_pixels: int) -> pyvips.Image:
    """The source at (about) ``target`` size as one 8-bit luminance band, in display
    orientation; transparent parts are shown over white, as most pages show them.

    Formats libvips cannot read (engine/foreign.py: HEIC, JPEG XL, PDF page 1, PSD) are
    decoded whole, as a render decodes them, refused past ``max_pixels``, then shrunk.
    """
    if foreign.decodes(fmt):
        image = foreign.decode(source, fmt, None, max_pixels=max_pixels)
        image = image.thumbnail_image(target.width, height=target.height, size="down")
    else:
        image = pyvips.Image.thumbnail_buffer(
            source, target.width, height=target.height, size="down"
        )
    image = to_srgb(image)
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    return image.colourspace("b-w")[0].cast("uchar")


def detect_faces(
    source: bytes,
    *,
    width: int,
    height: int,
    fmt: str = "",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    side: int = DETECT_SIDE,
) -> tuple[Face, ...]:
    """The faces in ``source`` (image bytes), frontal and profile, largest first, at most
    ``MAX_FACES``; the frontal ones with their landmarks (at most ``MAX_LANDMARK_FACES``).

    ``width``/``height`` are the source's display size in pixels (the stored size); boxes
    are returned on that grid. ``fmt`` is the stored format (``jpg``, ``pdf``, …);
    ``max_pixels`` bounds a whole-image decode (the render pixel budget). The image is
    scanned at :func:`detection_size`. Raises ``pyvips.Error`` for undecodable bytes (the
    caller maps it) and engine errors from the foreign decoders.
    """
    import numpy as np

    cv2 = _load_cv2()
    display = Size(width, height)
    grey = _grey(source, detection_size(display, side), fmt, max_pixels)
    pixels = np.ndarray(
        buffer=grey.write_to_memory(), dtype=np.uint8, shape=(grey.height, grey.width)
    )
    # OpenCV's own thread pool would take every core; a render process gets what libvips
    # was given (CROPSTACK_VIPS_CONCURRENCY).
    cv2.setNumThreads(max(1, pyvips.concurrency_get()))
    min_side = max(_MIN_FACE_PX, round(min(grey.width, grey.height) * _MIN_FACE_SHARE))
    equalised = cv2.equalizeHist(pixels)
    frontal = _largest_first(_scan(_classifier(), equalised, min_side, _SCALE_FACTOR))
    boxes = merge_profiles(frontal, _profiles(pixels))[:MAX_FACES]
    sx, sy = width / grey.width, height / grey.height
    faces = []
    for box in boxes:
        rank = frontal.index(box) if box in frontal else MAX_LANDMARK_FACES
        points = _landmarks(pixels, box) if rank < MAX_LANDMARK_FACES else {}
        faces.append(_scaled(box, sx, sy, display, points))
    return tuple(faces)


Rect = tuple[int, int, int, int]


def _scan(classifier: Any, pixels: Any, min_side: int, step: float) -> list[Rect]:
    found = classifier.detectMultiScale(
        pixels,
        scaleFactor=step,
        minNeighbors=_MIN_NEIGHBOURS,
        minSize=(min_side, min_side),
    )
    return [(int(x), int(y), int(w), int(h)) for x, y, w, h in found]


def _profiles(pixels: Any) -> list[Rect]:
    """Profile boxes (detection pixels) looking either way: the profile cascade on the
    image shrunk to ``PROFILE_SIDE`` and on its mirror image, boxes scaled back."""
    cv2 = _load_cv2()
    height, width = pixels.shape
    size = detection_size(Size(width, height), PROFILE_SIDE)
    small = pixels
    if (size.width, size.height) != (width, height):
        small = cv2.resize(pixels, (size.width, size.height), interpolation=cv2.INTER_AREA)
    small = cv2.equalizeHist(small)
    min_side = max(_MIN_FACE_PX, round(min(size.width, size.height) * _MIN_FACE_SHARE))
    classifier = _classifier(PROFILE_CASCADE)
    found = _scan(classifier, small, min_side, _PROFILE_SCALE_FACTOR)
    found += [
        (size.width - x - w, y, w, h)
        for x, y, w, h in _scan(classifier, cv2.flip(small, 1), min_side, _PROFILE_SCALE_FACTOR)
    ]
    fx, fy = width / size.width, height / size.height
    return [
        (round(x * fx), round(y * fy), max(1, round(w * fx)), max(1, round(h * fy)))
        for x, y, w, h in found
    ]


def _largest_first(boxes: list[Rect]) -> list[Rect]:
    return sorted(boxes, key=lambda b: (-b[2] * b[3], b[1], b[0]))


def _covered(a: Rect, b: Rect) -> float:
    """The larger of the shares of ``a`` and of ``b`` their intersection covers."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / min(a[2] * a[3], b[2] * b[3])


def merge_profiles(frontal: list[Rect], profiles: list[Rect]) -> list[Rect]:
    """Every face once, largest first: the frontal boxes, then each profile box (largest
    first) that overlaps no box kept before it by ``SAME_FACE_SHARE`` (boxes x, y, w, h)."""
    kept = list(frontal)
    for box in _largest_first(profiles):
        if all(_covered(box, other) < SAME_FACE_SHARE for other in kept):
            kept.append(box)
    return _largest_first(kept)


def _landmarks(pixels: Any, box: tuple[int, ...]) -> dict[str, tuple[float, float]]:
    """Landmark name -> point (detection pixels) of the face at ``box`` (x, y, w, h) of the
    detection image ``pixels``: its eyes and mouth, searched in the box scaled to
    ``LANDMARK_FACE_PX`` wide (the lower part reaches a little below the box, where a
    Haar face box often ends above the lips)."""
    cv2 = _load_cv2()
    x, y, w, h = box
    bottom = min(pixels.shape[0], y + round(h * 1.15))
    scale = LANDMARK_FACE_PX / w
    roi = cv2.equalizeHist(
        cv2.resize(
            pixels[y:bottom, x : x + w],
            (LANDMARK_FACE_PX, max(1, round((bottom - y) * scale))),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
    )
    side = LANDMARK_FACE_PX
    face = landmarks.Rect(0, 0, side, h * scale)
    upper = roi[: round(face.height * 0.6)]
    eyes = _hits(_classifier(EYE_CASCADE), upper, 3, (side // 8, side // 8), (side // 2,) * 2)
    lower_top = round(face.height * 0.5)
    mouths = _hits(
        _classifier(MOUTH_CASCADE), roi[lower_top:], 5, (side // 4, side // 8), (side, side // 2)
    )
    mouths = [landmarks.Rect(m.x, m.y + lower_top, m.width, m.height) for m in mouths]
    pair = landmarks.eye_pair(face, eyes)
    found = landmarks.points(pair, landmarks.mouth(face, mouths, pair))
    return {name: (x + px / scale, y + py / scale) for name, (px, py) in found.items()}


def _hits(
    classifier: Any,
    pixels: Any,
    neighbours: int,
    smallest: tuple[int, int],
    largest: tuple[int, int],
) -> list[landmarks.Rect]:
    if pixels.shape[0] < smallest[1] or pixels.shape[1] < smallest[0]:
        return []
    found = classifier.detectMultiScale(
        pixels, scaleFactor=1.05, minNeighbors=neighbours, minSize=smallest, maxSize=largest
    )
    return [landmarks.Rect(*(float(v) for v in hit)) for hit in found]


def _scaled(
    box: tuple[int, ...], sx: float, sy: float, image: Size, points: dict[str, tuple[float, float]]
) -> Face:
    x, y, w, h = box
    left = min(max(0, round(x * sx)), image.width - 1)
    top = min(max(0, round(y * sy)), image.height - 1)
    return Face(
        x=left,
        y=top,
        width=max(1, min(round(w * sx), image.width - left)),
        height=max(1, min(round(h * sy), image.height - top)),
        landmarks=tuple(
            (name, min(max(0.0, px * sx), image.width), min(max(0.0, py * sy), image.height))
            for name, (px, py) in points.items()
        ),
    )
