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


class UnsupportedFont(EngineError):
    """An uploaded font that is not a valid TrueType/OpenType font, or too large (422)."""

    status = 422


class UnsupportedMediaType(EngineError):
    """A known kind of file cropstack does not take as a source (EPS, video): 415."""

    status = 415


class BadSourceOption(EngineError):
    """A stack option that does not fit this source, e.g. a ``pdf.page`` past its last (400)."""

    status = 400


class TooManyPixels(EngineError):
    """Source width x height x frames (or frame count) above the configured limit (422)."""

    status = 422


class OverBudget(EngineError):
    """The plan would pass a render budget (pixels of any image, frames x pixels, output side,
    estimated work); decided from geometry before any pixel is decoded (400)."""

    status = 400


class RenderTimeout(EngineError):
    """The render or upload check passed its deadline and was killed; retry later (503)."""

    status = 503


class RenderCrashed(EngineError):
    """The render process died (memory limit or a libvips crash); retry later (503)."""

    status = 503


class FormatUnavailable(EngineError):
    """The output format is unknown or its encoder is missing in this libvips (400)."""

    status = 400


class RenderFailed(EngineError):
    """libvips failed while rendering an image that probed fine (422)."""

    status = 422


class UnsupportedOperation(EngineError):
    """The plan names an operation the engine cannot render (400)."""

    status = 400


class SourceNeeded(EngineError):
    """A render process was sent a job without the source's bytes (it held the source's
    decode lately) and no longer holds a decode that serves it: the caller sends the job
    again with the bytes (webapp/renderpool.py). Never reaches a client."""

    status = 503


class KeptPending(SourceNeeded):
    """A render sent with ``defer`` waits for a kept decode level that another render
    process is making (engine/decoded.py): its web worker waits for it without holding a
    render process (webapp/renderpool.py), then sends the job again. The message names the
    level (errors cross the pipe as a name and a message), as ``describe`` writes it.
    Never reaches a client."""

    status = 503

    @staticmethod
    def describe(level: int) -> str:
        """The message of a render waiting for level ``level`` (a shrink: 1, 2, 4 or 8)."""
        return f"waiting for the kept decode's 1/{level} level"

    @property
    def level(self) -> int:
        """The level (shrink) the render waits for; 0 when the message has none."""
        tail = self.message.rpartition("1/")[2][:1]
        return int(tail) if tail in ("1", "2", "4", "8") else 0
