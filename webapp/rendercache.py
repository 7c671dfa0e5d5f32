"""A disk cache of rendered outputs.

An entry is keyed by the organization, the stack name, the image hash and the fully
resolved render plan (which includes the output format), so overwriting a stack changes
the plan and makes its old entries unreachable, and deleting an image or stack makes its
renders unreachable because the render route answers 404 before looking here. Purges
remove the files: ``cache/<org_id>/<stack>/<image hash>/<key>.<ext>``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Where one render lives: ``digest`` is the SHA-256 of everything that shapes it."""

    org_id: str
    stack: str
    image_hash: str
    digest: str
    ext: str

    @classmethod
    def build(cls, *, org_id: str, stack: str, image_hash: str, plan: str, ext: str) -> CacheKey:
        """A key from the render's inputs; ``plan`` is ``RenderPlan.canonical()``."""
        digest = hashlib.sha256(f"{image_hash}\n{plan}".encode()).hexdigest()
        return cls(org_id, stack, image_hash, digest, ext)

    @property
    def etag(self) -> str:
        """A strong ETag, known before rendering (renders are deterministic)."""
        return f'"{self.digest[:32]}"'


class RenderCache:
    """Rendered bytes under ``root``; safe for concurrent writers (atomic renames)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _dir(self, org_id: str, stack: str, image_hash: str) -> Path:
        # stack names are validated ([a-z0-9_-]) and hashes hex before they get here;
        # the guard keeps a future caller from escaping the cache root.
        for part in (org_id, stack, image_hash):
            if not part or "/" in part or part.startswith("."):
                raise ValueError(f"unsafe cache path part: {part!r}")
        return self.root / org_id / stack / image_hash

    def _path(self, key: CacheKey) -> Path:
        return self._dir(key.org_id, key.stack, key.image_hash) / f"{key.digest}.{key.ext}"

    def get(self, key: CacheKey) -> bytes | None:
        """The cached bytes, or None."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, key: CacheKey, body: bytes) -> None:
        """Store ``body``; a concurrent writer of the same key is harmless."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        tmp.write_bytes(body)
        os.replace(tmp, path)

    def purge_stack(self, org_id: str, stack: str) -> None:
        """Forget every render of ``stack`` in the organization."""
        if _safe(stack):
            shutil.rmtree(self.root / org_id / stack, ignore_errors=True)

    def purge_image(self, org_id: str, image_hash: str) -> None:
        """Forget every render of one image, through any stack."""
        if not _safe(image_hash):
            return
        org_dir = self.root / org_id
        if not org_dir.is_dir():
            return
        for stack_dir in org_dir.iterdir():
            shutil.rmtree(stack_dir / image_hash, ignore_errors=True)


def _safe(part: str) -> bool:
    return bool(part) and "/" not in part and not part.startswith(".")
