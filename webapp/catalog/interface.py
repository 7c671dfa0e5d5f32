"""The catalog interface every backend implements (SQLite, PostgreSQL).

Typed protocols over typed, frozen records (``webapp.catalog.records``). Nothing here
hands out a connection or SQL: ``Catalog.unit_of_work()`` groups calls into one
transaction. Errors are the domain errors of ``webapp.catalog.errors``; ``webapp.errors``
alone maps them to HTTP. ``tests/webapp/test_catalog_contract.py`` runs one contract
suite against each backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol

from webapp.catalog.records import (
    ApiKey,
    KeyOwner,
    Membership,
    NewApiKey,
    NewImage,
    NewMember,
    NewUser,
    Organization,
    OrganizationSummary,
    Provisioned,
    SearchPage,
    SigningKey,
    SourceImage,
    Stack,
    StackWrite,
)
from webapp.catalog.usage import BilledOrganization, DeliveryCount, StorageDay
from webapp.search import Search


class Accounts(Protocol):
    """Organizations, users, API keys and memberships."""

    def key_by_hash(self, key_hash: str) -> KeyOwner | None: ...
    def key_by_id(self, key_id: str) -> KeyOwner | None: ...
    def user_ids(self, id_or_email: str) -> list[str]: ...
    def organization_summaries(self) -> list[OrganizationSummary]: ...
    def user_exists(self, user_id: str) -> bool: ...
    def keys_of(self, user_id: str) -> list[ApiKey]: ...
    def key(self, user_id: str, key_id: str) -> ApiKey | None: ...
    def may_manage_keys(self, user_id: str) -> bool: ...
    def add_key(self, user_id: str, comment: str | None) -> NewApiKey: ...
    def delete_key(self, user_id: str, key_id: str, *, current_key_id: str) -> bool: ...
    def org_by_name(self, name: str) -> Organization | None: ...
    def signup(self, email: str, org_name: str | None) -> NewUser: ...
    def provision(
        self, org_name: str, email: str, roles: list[str], api_key: str
    ) -> Provisioned: ...
    def create_org(
        self,
        name: str,
        *,
        display_name: str,
        billing_email: str,
        master_organization: str | None,
        admin_user_id: str,
    ) -> Organization: ...
    def set_options(self, org_id: str, changes: dict[str, Any]) -> Organization: ...
    def add_signing_key(self, org_id: str) -> tuple[SigningKey, ...]: ...
    def drop_signing_keys(self, org_id: str, keep: int) -> tuple[SigningKey, ...]: ...
    def membership_of(
        self, org_name: str, user_id: str
    ) -> tuple[Organization, tuple[str, ...]] | None: ...
    def memberships(self, org_id: str) -> list[Membership]: ...
    def membership(self, org_id: str, user_id: str) -> Membership | None: ...
    def put_membership(
        self,
        org_id: str,
        user_id: str,
        roles: list[str],
        comment: str | None,
        *,
        acting_user_id: str,
    ) -> tuple[str, Membership | None]: ...
    def delete_membership(self, org_id: str, user_id: str) -> None: ...
    def create_member_user(
        self, org_id: str, email: str, roles: list[str], comment: str | None
    ) -> NewMember: ...


class Images(Protocol):
    """Source images of organizations (live and soft-deleted)."""

    def get_exact(self, organization_id: str, image_hash: str) -> SourceImage | None: ...
    def find(
        self, organization_id: str, ref: str, *, deleted_since: str | None = None
    ) -> SourceImage | None: ...
    def live_by_binary_hash(self, organization_id: str, binary_hash: str) -> list[SourceImage]: ...
    def blob_referenced(self, blob_key: str) -> bool: ...
    def insert(
        self,
        organization_id: str,
        image: NewImage,
        *,
        created: str | None = None,
        locked: bool = False,
    ) -> tuple[SourceImage, bool]: ...
    def revive(self, organization_id: str, image: NewImage) -> SourceImage: ...
    def update(
        self, organization_id: str, image_hash: str, *, unless_locked: bool = False, **changes: Any
    ) -> SourceImage: ...
    def soft_delete(self, organization_id: str, hashes: list[str]) -> int: ...
    def restore(self, organization_id: str, image_hash: str) -> SourceImage: ...
    def copy_to(
        self, image: SourceImage, destination_id: str, *, overwrite: bool
    ) -> Literal["created", "overwritten", "exists"]: ...
    def purge_expired(self, cutoff: str) -> int: ...


class ImageSearch(Protocol):
    """Search over one organization's images (docs/search.md)."""

    def search(
        self,
        search: Search,
        organization_id: str,
        *,
        restore_cutoff: str,
        binary_hash: str | None = None,
    ) -> SearchPage: ...


class Stacks(Protocol):
    """Stacks of organizations, with the basestack rules checked where they are written."""

    def get(self, org_id: str, name: str) -> Stack | None: ...
    def list(self, org_id: str, *, limit: int, offset: int) -> list[Stack]: ...
    def names(self, org_id: str) -> list[str]: ...
    def put(
        self, org_id: str, name: str, definition: dict[str, Any], *, overwrite: bool
    ) -> StackWrite: ...
    def delete(self, org_id: str, name: str) -> None: ...
    def names_using_basestack(self, org_id: str, name: str) -> list[str]: ...
    def purge_previews(self, created_before: str) -> int: ...


class Usage(Protocol):
    """Usage figures per organization and UTC day (docs/stats.md): deliveries of render
    URLs, added by each worker's periodic flush, and storage, kept by triggers."""

    def add_deliveries(self, counts: Sequence[DeliveryCount]) -> None: ...
    def deliveries(
        self, org_ids: Sequence[str], first: str, last: str
    ) -> list[DeliveryCount]: ...
    def storage(self, org_id: str, first: str, last: str) -> list[StorageDay]: ...
    def counting_since(self) -> str | None: ...
    def billed_with(self, org_name: str) -> list[BilledOrganization]: ...


class CatalogHandle(Protocol):
    """What routes and ingest hold: the groups and a unit of work (no connection)."""

    accounts: Accounts
    images: Images
    image_search: ImageSearch
    stacks: Stacks
    usage: Usage

    def unit_of_work(self) -> AbstractContextManager[None]: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...
