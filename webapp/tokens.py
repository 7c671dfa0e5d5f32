"""Short-lived JWTs standing in for an API key, as rokka's ``/user/apikeys/token`` issues them.

A token is an HS256 JWT (PyJWT) whose payload is rokka's: ``id`` (the user), ``exp`` (unix
seconds), ``expt`` (the lifetime asked for, seconds), ``ips`` (addresses and networks it may be
used from; empty: anywhere) and ``rn`` (renewable), plus ``kid``, the id of the API key that
issued it. Each token is signed with a key derived from the server's secret *and* the stored
digest of that API key, so deleting (rotating) the key revokes every token it issued, as
rokka documents, without a revocation list.

The server secret is the ``token_secret`` setting; when it is empty, a random secret kept
with the catalog: in ``{data_dir}/token-secret`` (mode 0600) beside an SQLite catalog, in
the catalog's ``service_secrets`` table on PostgreSQL, so every node sharing that catalog
signs and verifies with the same one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt

if TYPE_CHECKING:
    from webapp.catalog.interface import SharedSecrets

ALGORITHM = "HS256"
DEFAULT_LIFETIME_S = 86_400
MAX_LIFETIME_S = 365 * 86_400
MAX_IP_ENTRIES = 10
MAX_IP_ADDRESSES = 10_000
SECRET_FILE = "token-secret"
SECRET_NAME = "token_secret"  # its name in a shared catalog's service_secrets

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TokenRefused(Exception):
    """A token option or a renewal the caller may not have (the route answers 400/403)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class InvalidToken(Exception):
    """A bearer token that is malformed, forged, expired, revoked or used from elsewhere
    (the caller answers 401, as rokka does)."""


@dataclass(frozen=True, slots=True)
class TokenOptions:
    """What a new token allows: lifetime in seconds (1 to one year), the networks it may
    be used from (empty: anywhere) and whether it may be renewed with itself."""

    lifetime_s: int
    networks: tuple[Network, ...]
    renewable: bool


@dataclass(frozen=True, slots=True)
class Claims:
    """A verified token: the user, the issuing key, and the options it was made with."""

    user_id: str
    key_id: str
    expires_at: int
    options: TokenOptions


def server_secret(configured: str, data_dir: str | Path) -> bytes:
    """The secret tokens are signed with: ``configured`` if set, else the data dir's own
    (created once, atomically, readable by the owner only)."""
    if configured:
        return configured.encode("utf-8")
    path = Path(data_dir) / SECRET_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    fresh = secrets.token_hex(32).encode("ascii")
    tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, fresh)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # first writer wins; a concurrent worker reads the winner's
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes().strip()


def shared_secret(store: SharedSecrets) -> bytes:
    """The secret kept in a catalog several nodes share, made by the first node that
    asks (32 random bytes, hex)."""
    return store.get_or_make(SECRET_NAME, lambda: secrets.token_hex(32)).encode("ascii")


def _signing_key(secret: bytes, key_digest: str) -> bytes:
    message = b"cropstack-token:" + key_digest.encode("ascii")
    return hmac.new(secret, message, hashlib.sha256).digest()


def _flag(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    text = value.strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no", ""}:
        return False
    raise TokenRefused(f"{name} must be true or false")


def parse_options(query: Mapping[str, str], request_ip: str) -> TokenOptions:
    """Token options from rokka's query parameters: ``expires_in`` (seconds, default one
    day), ``renewable``, ``no_ip_protection`` and ``ips`` (comma-separated addresses or
    networks, ``request_ip`` meaning the caller's; at most 10 entries covering at most
    10,000 addresses). Without ``ips`` or ``no_ip_protection`` a token is bound to the
    caller's address and renewable; with ``no_ip_protection`` it is not renewable unless
    ``renewable`` says so."""
    raw_expires = query.get("expires_in")
    lifetime = DEFAULT_LIFETIME_S
    if raw_expires is not None:
        try:
            lifetime = int(raw_expires)
        except ValueError:
            raise TokenRefused("expires_in must be a whole number of seconds") from None
        if not 1 <= lifetime <= MAX_LIFETIME_S:
            raise TokenRefused(f"expires_in must be between 1 and {MAX_LIFETIME_S} seconds")
    no_protection = _flag(query.get("no_ip_protection"), "no_ip_protection") or False
    raw_ips = (query.get("ips") or "").strip()
    if no_protection and raw_ips:
        raise TokenRefused("no_ip_protection and ips can't be combined")
    if no_protection:
        networks: tuple[Network, ...] = ()
    else:
        networks = _networks(raw_ips or "request_ip", request_ip)
    renewable = _flag(query.get("renewable"), "renewable")
    return TokenOptions(
        lifetime_s=lifetime,
        networks=networks,
        renewable=(not no_protection) if renewable is None else renewable,
    )


def _networks(raw: str, request_ip: str) -> tuple[Network, ...]:
    entries = [e.strip() for e in raw.split(",") if e.strip()]
    if len(entries) > MAX_IP_ENTRIES:
        raise TokenRefused(f"ips may list at most {MAX_IP_ENTRIES} addresses or networks")
    networks: list[Network] = []
    for entry in entries:
        text = request_ip if entry == "request_ip" else entry
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise TokenRefused("ips must be IP addresses or networks (CIDR)") from None
    if sum(n.num_addresses for n in networks) > MAX_IP_ADDRESSES:
        raise TokenRefused(f"ips may cover at most {MAX_IP_ADDRESSES} addresses")
    return tuple(dict.fromkeys(networks))


def issue(
    secret: bytes, *, user_id: str, key_id: str, key_digest: str, options: TokenOptions
) -> tuple[str, dict[str, Any]]:
    """A signed token and its payload, valid from now for ``options.lifetime_s`` seconds."""
    payload: dict[str, Any] = {
        "id": user_id,
        "exp": int(time.time()) + options.lifetime_s,
        "expt": options.lifetime_s,
        "ips": [_shown(n) for n in options.networks],
        "rn": options.renewable,
        "kid": key_id,
    }
    return jwt.encode(payload, _signing_key(secret, key_digest), algorithm=ALGORITHM), payload


def _shown(network: Network) -> str:
    """A single address as rokka shows it (``212.50.10.10``), a network in CIDR form."""
    return str(network.network_address) if network.num_addresses == 1 else str(network)


def unverified_key_id(token: str) -> str:
    """The ``kid`` a token claims, read before its signature can be checked (the key's
    digest is part of the signing key). Raises InvalidToken when it can't be read."""
    try:
        kid = jwt.decode(token, options={"verify_signature": False}).get("kid")
    except jwt.PyJWTError:
        raise InvalidToken("the token is not a valid JWT") from None
    if not isinstance(kid, str) or not kid or len(kid) > 64:
        raise InvalidToken("the token names no API key")
    return kid


def verify(token: str, secret: bytes, *, key_digest: str, client_ip: str) -> Claims:
    """The claims of ``token`` signed for the key with ``key_digest``, unexpired, and used
    from one of its networks; InvalidToken otherwise."""
    try:
        payload = jwt.decode(
            token,
            _signing_key(secret, key_digest),
            algorithms=[ALGORITHM],
            options={"require": ["exp", "id", "kid", "expt"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the token has expired") from None
    except jwt.PyJWTError:
        raise InvalidToken("the token is not valid") from None
    try:
        networks = tuple(ipaddress.ip_network(n, strict=False) for n in payload.get("ips") or ())
        options = TokenOptions(
            lifetime_s=int(payload["expt"]), networks=networks, renewable=bool(payload.get("rn"))
        )
    except (TypeError, ValueError):
        raise InvalidToken("the token is not valid") from None
    if networks and not _address_in(client_ip, networks):
        raise InvalidToken("the token may not be used from this address")
    return Claims(
        user_id=str(payload["id"]),
        key_id=str(payload["kid"]),
        expires_at=int(payload["exp"]),
        options=options,
    )


def _address_in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def renewal(current: Claims, asked: TokenOptions, explicit: Mapping[str, str]) -> TokenOptions:
    """The options of a token renewed with the token ``current`` (not with an API key).

    Only renewable tokens renew; the new lifetime may not exceed the old one's ``expt``;
    the address restriction is kept (a renewal can't widen where a token works). Raises
    TokenRefused with status 403, as rokka answers a failed renewal.
    """
    if not current.options.renewable:
        raise TokenRefused("this token is not renewable", status=403)
    lifetime = asked.lifetime_s if "expires_in" in explicit else current.options.lifetime_s
    if lifetime > current.options.lifetime_s:
        raise TokenRefused(
            "a renewed token can't live longer than the token used to renew it", status=403
        )
    if ("ips" in explicit or "no_ip_protection" in explicit) and (
        asked.networks != current.options.networks
    ):
        raise TokenRefused("a renewed token keeps the addresses of the token", status=403)
    return TokenOptions(lifetime_s=lifetime, networks=current.options.networks, renewable=True)
