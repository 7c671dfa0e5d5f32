"""Errors raised while parsing or validating stacks and render URLs."""

from __future__ import annotations


class StackError(ValueError):
    """A stack definition or render URL is invalid.

    ``status`` is the HTTP status the web layer answers with; ``operation`` and
    ``parameter`` name what was wrong when known, so messages can point at it.
    """

    status: int = 400

    def __init__(
        self, message: str, *, operation: str | None = None, parameter: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.parameter = parameter


class NotImplementedOperation(StackError):
    """A rokka operation that cropstack knows by name but does not render yet."""


class ExpressionsNotSupported(StackError):
    """An expression where rokka allows none: a stack option, or a URL ``o-``/``v-`` value."""


class UnknownOperation(StackError):
    """An operation name that is neither implemented nor a known rokka operation."""


class UrlNotFound(StackError):
    """A render URL that does not address an image (bad hash, traversal, overlong slug).

    The web layer answers 404: such a URL names no resource, it is not a malformed request.
    """

    status: int = 404
