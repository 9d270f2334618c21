"""What checking every byte costs a store read: throughput with verification over without.

    python bench/store_verify.py [--size-mib 256] [--repeat 7] [--stores local,memory]
                                 [--also-sha256]

One file of random bytes is committed to a store in a temporary folder (and to a ``memory://``
store). Each repeat times, in this one process, the read that `ArtifactStore.get` and transfers
make of that blob into a new file outside the store:

- without: the blob's chunks (`ArtifactStore.read_blob_chunks`) written to the file as they come
  (`copy_checked(..., verify=False)`);
- with: the same chunks written the same way while a second thread hashes them, then the size and
  digest compared with the manifest (`copy_checked(...)` and `ArtifactStore.check_blob`), which is
  exactly what `get` does for each file. The digest is the one `get` checks: BLAKE3, which the
  manifest records beside the sha256 since voltx records both; `--also-sha256` measures the cold
  case again the way a manifest without BLAKE3 (written by an older voltx) is checked, by sha256.

The two alternate within each repeat (which goes first alternates too), so a burst of load on a
shared machine hits both alike. Printed per store: the median time of each side, and the median
of the per-repeat throughput ratios (with / without) with their spread (min-max).

The local store is measured twice. Warm: the blob is in the page cache, so reading it costs a
memory copy and the hashing (one core's sha256) is all there is to see: the worst case, on a
machine whose cores are busy the hashing thread cannot overlap the copy at all. Cold: before
every read (both sides) the blob's pages are dropped from the page cache
(``posix_fadvise(DONTNEED)`` on that one file, after ``fdatasync``), so it is read from the disk
as a store read of an artifact that is not in memory is, and the hashing thread runs while the
reader waits on the disk. The last line is the cold local ratio (the default store,
``./.voltx``); target: at least 0.9. ``memory://`` is all copies, like the warm case.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import attrs

from voltx.store import ArtifactStore
from voltx.store._verified import Algorithm, algorithm_for, copy_checked

MIB = 2**20


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        for start in range(0, size, 16 * MIB):
            out.write(os.urandom(min(16 * MIB, size - start)))


def evict(path: Path) -> None:
    """Drop one file's pages from the page cache (written back first, so they can go)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_once(
    store: ArtifactStore,
    name: str,
    dest: Path,
    *,
    verify: bool,
    cold: bool = False,
    sha256_only: bool = False,
) -> float:
    """Seconds to read the artifact's one blob into `dest`, checked or not."""
    artifact = store.resolve(name)
    entry = artifact.files[0]
    if sha256_only:
        # As a manifest without a BLAKE3 digest is read.
        entry = attrs.evolve(entry, blake3=None)
    algorithm: Algorithm = algorithm_for(entry)
    if cold:
        assert store.local_root is not None
        evict(store.local_root / "blobs" / "sha256" / entry.sha256[:2] / entry.sha256)
    started = time.perf_counter()
    checked = copy_checked(
        store.read_blob_chunks(entry.sha256), dest, verify=verify, algorithm=algorithm
    )
    if checked is not None:
        store.check_blob(artifact, entry, checked)
    seconds = time.perf_counter() - started
    dest.unlink()
    return seconds


def measure(
    store: ArtifactStore,
    out: Path,
    repeat: int,
    size: int,
    *,
    cold: bool,
    sha256_only: bool = False,
) -> float:
    """Print one store's figures; return the median ratio of throughputs, with / without."""
    times: dict[bool, list[float]] = {False: [], True: []}
    ratios = []
    read_once(store, "bench_blob", out / "warm-up", verify=True)  # thread start, page cache
    for index in range(repeat):
        order = (False, True) if index % 2 == 0 else (True, False)
        pair = {}
        for verify in order:
            dest = out / uuid.uuid4().hex
            pair[verify] = read_once(
                store, "bench_blob", dest, verify=verify, cold=cold, sha256_only=sha256_only
            )
            times[verify].append(pair[verify])
        ratios.append(pair[False] / pair[True])  # throughput with / without = t_without / t_with
    without, with_ = statistics.median(times[False]), statistics.median(times[True])
    ratio = statistics.median(ratios)
    where = " (cold: read from disk)" if cold else " (warm: page cache)"
    checked_by = "sha256, as a manifest without BLAKE3" if sha256_only else "BLAKE3"
    print(f"  {store.url}{where}, checked by {checked_by}")
    print(f"    without verification  {without:7.3f} s  {size / MIB / without:8.0f} MiB/s")
    print(f"    with verification     {with_:7.3f} s  {size / MIB / with_:8.0f} MiB/s")
    print(
        f"    ratio with/without    {ratio:7.3f}  (median of {repeat} pairs; "
        f"spread {min(ratios):.3f}-{max(ratios):.3f})"
    )
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256, help="size of the blob read")
    parser.add_argument("--repeat", type=int, default=7, help="pairs (at least 5)")
    parser.add_argument("--stores", default="local,memory", help="local, memory, or both")
    parser.add_argument(
        "--also-sha256",
        action="store_true",
        help="also the cold local read checked by sha256 (a manifest without BLAKE3)",
    )
    args = parser.parse_args()
    if args.repeat < 5:
        parser.error("--repeat must be at least 5")
    size = args.size_mib * MIB
    kinds = [kind.strip() for kind in args.stores.split(",") if kind.strip()]
    print(
        f"one {args.size_mib} MiB blob, {args.repeat} interleaved pairs per store, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    ratios: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="voltx-bench-") as folder:
        root = Path(folder)
        source = root / "bench_blob.bin"
        write_random(source, size)
        out = root / "out"
        out.mkdir()
        for kind in kinds:
            url = str(root / "store") if kind == "local" else f"memory://bench-{uuid.uuid4().hex}"
            store = ArtifactStore.open(url)
            store.commit("bench_blob", source, {"phase": None})
            ratios[kind] = measure(store, out, args.repeat, size, cold=False)
            if kind == "local":
                if args.also_sha256:
                    measure(store, out, args.repeat, size, cold=True, sha256_only=True)
                ratios["cold"] = measure(store, out, args.repeat, size, cold=True)
    headline = ratios.get("cold", min(ratios.values()))
    print(f"store read with verification / without ratio: {headline:.3f} (target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
