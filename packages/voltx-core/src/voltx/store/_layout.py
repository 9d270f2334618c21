"""Where things live under a store's root (the layout `voltx.store.artifacts` describes)."""

from __future__ import annotations

from voltx.errors import StoreError
from voltx.store.names import check_member_path, check_name

# Top-level folders for files that are not artifacts: they never hold blobs, manifests or refs,
# and `gc` leaves them alone.
LOOSE_AREAS = frozenset({"checkpoints"})
# Folders of a store's own data: `get` never writes into them (job and work folders beside them
# are the caller's). `quarantine/` holds what `voltx artifacts repair` moved aside.
DATA_AREAS = frozenset({"blobs", "manifests", "refs", "records", "tmp", "quarantine"}) | LOOSE_AREAS


def blob_path(digest: str) -> str:
    return f"blobs/sha256/{digest[:2]}/{digest}"


def manifest_path(digest: str) -> str:
    return f"manifests/{digest}.json"


def ref_path(name: str) -> str:
    return f"refs/{check_name(name)}.json"


def loose_path(path: str) -> str:
    check_member_path(path)
    if path.split("/", 1)[0] not in LOOSE_AREAS:
        raise StoreError(
            f"{path!r} is outside the store's loose-file areas ({', '.join(LOOSE_AREAS)})"
        )
    return path
