"""Engine exceptions. Each carries the HTTP ``status`` the web layer answers with and a
public ``message`` (safe to show: never a file path or libvips internals beyond one line)."""

from __future__ import annotations


class EngineError(Exception):
    """Base class: something about the image or the requested output cannot be rendered."""

    status: int = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedImage(EngineError):
    """Not an image, a format outside the allow-list, or a corrupt/truncated file (422)."""

    status = 422


class TooManyPixels(EngineError):
    """Source width x height x frames (or frame count) above the configured limit (422)."""

    status = 422


class OutputTooLarge(EngineError):
    """The requested output is over 10000 px a side or 100 megapixels (400)."""

    status = 400


class FormatUnavailable(EngineError):
    """The output format is unknown or its encoder is missing in this libvips (400)."""

    status = 400


class RenderFailed(EngineError):
    """libvips failed while rendering an image that probed fine (422)."""

    status = 422


class UnsupportedOperation(EngineError):
    """The plan names an operation the engine cannot render (400)."""

    status = 400
