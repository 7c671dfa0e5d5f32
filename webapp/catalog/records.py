"""Typed, frozen records the catalog hands out and takes in (every backend, docs/server.md).

Records are values: changing one means asking the catalog for a new one. Times are ISO
8601 UTC strings with whole seconds (``2019-12-10T11:13:24+00:00``), which sort as text.
JSON-valued fields (metadata, options, stack definitions) are plain Python values; the
records are frozen, their dicts are not copied, so callers treat them as read-only.

``Record.__getitem__`` reads a field by name (``image["hash"]``). It exists for code
written against the earlier dict rows (the blob store's ``read_original`` and branches
merged later); new code reads attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any


class Record:
    """Read-only field access by name, for code written against the earlier dict rows."""

    __slots__ = ()

    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    def get(self, name: str, default: Any = None) -> Any:
        """The field ``name``, or ``default`` when the record has no such field."""
        return getattr(self, name, default)

    def as_dict(self) -> dict[str, Any]:
        """The record's fields as a new dict (shallow)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SigningKey(Record):
    """One secret for signing render URLs of an organization, and when it was made."""

    key: str
    created: str


@dataclass(frozen=True, slots=True)
class Organization(Record):
    """An organization. ``signing_keys`` newest first (clients sign with the first)."""

    id: str
    name: str
    display_name: str
    billing_email: str
    master_organization: str | None
    options: dict[str, Any]
    signing_keys: tuple[SigningKey, ...]
    created: str

    def with_options(self, options: dict[str, Any]) -> Organization:
        """This organization with other options."""
        return replace(self, options=options)


@dataclass(frozen=True, slots=True)
class OrganizationSummary(Record):
    """One line of ``cropstack orgs list``: members and live images of an organization."""

    name: str
    display_name: str
    created: str
    members: int
    images: int


@dataclass(frozen=True, slots=True)
class KeyOwner(Record):
    """Who an API key belongs to: the key's public ``id``, its digest, the user."""

    id: str
    key_hash: str
    user_id: str
    email: str


@dataclass(frozen=True, slots=True)
class ApiKey(Record):
    """An API key as listed (never its secret)."""

    id: str
    comment: str | None
    created: str


@dataclass(frozen=True, slots=True)
class NewApiKey(Record):
    """A key just made, with the only copy of its secret (``api_key``)."""

    id: str
    api_key: str
    comment: str | None
    created: str


@dataclass(frozen=True, slots=True)
class NewUser(Record):
    """A user just created, with the only copy of its key secret."""

    id: str
    email: str
    api_key: str


@dataclass(frozen=True, slots=True)
class Membership(Record):
    """A user's membership of an organization, with the user's email."""

    organization_id: str
    user_id: str
    email: str
    roles: tuple[str, ...]
    active: bool
    comment: str | None
    created: str
    last_access: str | None


@dataclass(frozen=True, slots=True)
class NewMember(Record):
    """A membership made together with its new user, and that user's key secret."""

    membership: Membership
    api_key: str


@dataclass(frozen=True, slots=True)
class Provisioned(Record):
    """What ``Accounts.provision`` made: the organization's and the new user's ids."""

    organization_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class SourceImage(Record):
    """A source image of one organization; ``deleted_at`` None while it is live."""

    organization_id: str
    hash: str
    short_hash: str
    binary_hash: str
    blob_key: str
    name: str
    format: str
    mimetype: str
    size: int
    width: int
    height: int
    user_metadata: dict[str, Any]
    dynamic_metadata: dict[str, Any]
    static_metadata: dict[str, Any]
    opaque: bool
    animated: bool
    protected: bool
    locked: bool
    created: str
    deleted_at: str | None


@dataclass(frozen=True, slots=True)
class NewImage(Record):
    """Everything needed to create an image, besides organization, short hash and time."""

    hash: str
    binary_hash: str
    blob_key: str
    name: str
    format: str
    mimetype: str
    size: int
    width: int
    height: int
    user_metadata: dict[str, Any]
    dynamic_metadata: dict[str, Any]
    static_metadata: dict[str, Any]
    opaque: bool
    animated: bool
    protected: bool


def new_image_from(image: SourceImage, **changes: Any) -> NewImage:
    """A ``NewImage`` copying ``image``, with ``changes`` applied (e.g. new hash/metadata)."""
    values = {f.name: getattr(image, f.name) for f in fields(NewImage)}
    values.update(changes)
    return NewImage(**values)


@dataclass(frozen=True, slots=True)
class Stack(Record):
    """A stored stack: its canonical JSON ``definition`` (``StackDefinition.to_json()``)."""

    name: str
    definition: dict[str, Any]
    created: str


@dataclass(frozen=True, slots=True)
class StackWrite(Record):
    """What ``Stacks.put`` did: ``created`` (True) or replaced an existing stack."""

    created: bool
    stack: Stack


@dataclass(frozen=True, slots=True)
class SearchPage(Record):
    """One page of a search: ``total`` matches, the page's ``images``, each image's sort
    ``keys`` (for cursors), whether images follow the page (``more``) and the facets
    (field key → ``[{"value", "count"}]``, most frequent first)."""

    total: int
    images: list[SourceImage]
    keys: list[tuple[Any, ...]]
    more: bool
    facets: dict[str, list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Alias(Record):
    """A source image alias: its ``name``, the full ``hash`` it points to and when it was
    last pointed (``created``, reset when repointed, as a stack's on overwrite)."""

    name: str
    hash: str
    created: str


@dataclass(frozen=True, slots=True)
class AliasWrite(Record):
    """What ``Aliases.put`` did: ``created`` (True) or repointed an existing alias."""

    created: bool
    alias: Alias


@dataclass(frozen=True, slots=True)
class AlbumImage(Record):
    """What an album listing shows of one image (nothing else of it is public there)."""

    hash: str
    short_hash: str
    name: str
    format: str
    mimetype: str
    width: int
    height: int
    favorite: bool


@dataclass(frozen=True, slots=True)
class AlbumPage(Record):
    """One page of an album: ``total`` listed images and the page's ``images``."""

    total: int
    images: list[AlbumImage]
