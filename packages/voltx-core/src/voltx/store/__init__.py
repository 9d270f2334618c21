"""The artifact store (see `voltx.store.artifacts` for its layout and commit protocol)."""

from voltx.store.artifacts import Artifact, ArtifactStore, FileEntry, GcReport
from voltx.store.names import check_name

__all__ = ["Artifact", "ArtifactStore", "FileEntry", "GcReport", "check_name"]
