"""Whitelist patterns of remote image URLs (``remote_fullurl_whitelist``), matched by RE2.

An organization's admin writes the patterns; anonymous render URLs supply the text they
are run against. Python's ``re`` backtracks, so a pattern such as ``(a+)+$`` and a crafted
2 KB URL would hold a request thread for hours. RE2 matches in time linear in the text
whatever the pattern, at the price of its syntax: no backreferences and no look-around
(such patterns are refused when stored).
"""

from __future__ import annotations

from functools import lru_cache

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # refusals are answered as 400s, not logged by the library


class PatternError(ValueError):
    """A pattern RE2 cannot compile; the message says why."""


@lru_cache(maxsize=1024)
def compiled(pattern: str) -> re2._Regexp:
    """``pattern`` compiled by RE2 (cached); PatternError when it is not valid RE2."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(str(reason)) from None


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches anywhere in ``text`` (as ``re.search``); an invalid
    pattern matches nothing."""
    try:
        return compiled(pattern).search(text) is not None
    except PatternError:
        return False
