"""Validation of account fields shared by the HTTP routes and the ``cropstack`` CLI.

``POST /users`` and ``cropstack users create`` must accept and refuse exactly the same
emails and organization names, so both call these. Failures are 400 ``ApiError``s whose
message names the field; the CLI prints that message.
"""

from __future__ import annotations

import re
from typing import Any

from webapp.errors import bad_request
from webapp.routes import RESERVED_NAMES

# Organization names end up as DNS labels ({org}.render-domain), hence 1..63 characters
# and no hyphen at either end.
_ORG_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Deliberately loose: one @, a dot in the domain, no whitespace. We never send mail.
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
_MAX_EMAIL = 254


def parse_email(value: Any, *, field: str) -> str:
    """``value`` if it is an email address of at most 254 characters, else a 400."""
    if not isinstance(value, str) or len(value) > _MAX_EMAIL or not _EMAIL.fullmatch(value):
        raise bad_request(f"{field} must be a valid email address")
    return value


def parse_org_name(value: Any, *, field: str = "organization") -> str:
    """``value`` if it is a usable organization name (a DNS label, not reserved), else 400."""
    if not isinstance(value, str) or not _ORG_NAME.fullmatch(value):
        raise bad_request(
            f"{field} must be 1 to 63 characters of a-z, 0-9 and '-', "
            "not starting or ending with '-'"
        )
    if value in RESERVED_NAMES:
        raise bad_request(f"{field} {value!r} is reserved")
    return value
