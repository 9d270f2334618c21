"""Push and pull of one large artifact through voltx's S3 store, against boto3's managed transfer.

    python bench/s3_transfer.py [--size-mib 256] [--rounds 5]

A moto S3 server runs in this process on 127.0.0.1 (`ThreadedMotoServer`, port 0), with fake
credentials and no AWS configuration read. One file of random bytes is added to a local store,
then each round times, on the same server in the same process:

- voltx push: ``transfer(local, s3://bench/voltx-N, ["bench_blob"])``, i.e. ``voltx artifacts
  push``: existence checks, the multipart upload of the blob, the manifest (create-only), the ref;
- boto3 upload: ``client.upload_file`` of the same file (boto3's defaults: 8 MiB parts, 10
  threads);
- voltx pull: ``transfer(s3://bench/voltx-N, fresh local store)``: ranged GETs, the sha256 check
  of the blob, and its copy into the local store;
- boto3 download: ``client.download_file`` of the same object.

The order of voltx and boto3 alternates between rounds, and the objects of a round are deleted
before the next, so neither side runs on a warmer or fuller server. Printed: seconds and MiB/s of
each, and the ratio of throughputs voltx/boto3 per direction (the median over rounds of each
round's ratio; target: at least 0.8 each way). Finally the artifact is pushed again unchanged:
it must move 0 bytes. The exit status is 0 when all three hold.

Ratios compare runs in this one process; absolute rates depend on the machine and its load (moto
is a Python server sharing this process's GIL with both clients).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

# Fake credentials, and no profile or instance metadata: nothing but 127.0.0.1 is contacted.
BENCH_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
BUCKET = "bench"
MIB = 2**20


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        for start in range(0, size, 16 * MIB):
            out.write(os.urandom(min(16 * MIB, size - start)))


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(BENCH_ENV)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(name, None)
    # werkzeug logs every request of the moto server to stderr.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    import boto3
    import structlog
    from moto.server import ThreadedMotoServer

    from voltx.store import ArtifactStore
    from voltx.store.transfer import transfer

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # Both clients find the server the same way: botocore's own environment variable.
    os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)

    size = args.size_mib * MIB
    results: dict[str, list[float]] = {k: [] for k in ("push", "upload", "pull", "download")}
    with tempfile.TemporaryDirectory(prefix="voltx-bench-s3-") as tmp:
        work = Path(tmp)
        source_file = work / "blob.bin"
        write_random(source_file, size)
        local = ArtifactStore.open(str(work / "local"))
        local.add("bench_blob", source_file)
        print(
            f"moto {endpoint}, {args.size_mib} MiB artifact, {args.rounds} round(s); "
            f"voltx store: {type(ArtifactStore.open(f's3://{BUCKET}/probe')._backing.fs).__name__}"
        )
        remote_url = ""
        for round_number in range(args.rounds):
            remote_url = f"s3://{BUCKET}/voltx-{round_number}"
            remote = ArtifactStore.open(remote_url)
            pulled = ArtifactStore.open(str(work / f"pulled-{round_number}"))
            key = f"boto3-{round_number}"
            download = work / f"download-{round_number}.bin"
            steps: list[tuple[str, Callable[[], object]]] = [
                ("push", partial(transfer, local, remote, ["bench_blob"])),
                ("upload", partial(client.upload_file, str(source_file), BUCKET, key)),
                ("pull", partial(transfer, remote, pulled, ["bench_blob"])),
                ("download", partial(client.download_file, BUCKET, key, str(download))),
            ]
            if round_number % 2:  # alternate who goes first in each direction
                steps = [steps[1], steps[0], steps[3], steps[2]]
            for label, action in steps:
                results[label].append(timed(action))
            took = {label: times[-1] for label, times in results.items()}
            print(
                f"round {round_number + 1}: "
                + ", ".join(f"{label} {seconds:.2f}s" for label, seconds in took.items())
                + f"; ratios up {took['upload'] / took['push']:.2f},"
                f" down {took['download'] / took['pull']:.2f}"
            )
            if round_number < args.rounds - 1:
                _delete_prefix(client, f"voltx-{round_number}/")
                client.delete_object(Bucket=BUCKET, Key=key)
            download.unlink()

        print(f"\n{'':16s}{'median s':>10s}{'MiB/s':>10s}")
        for label, name in (
            ("push", "voltx push"),
            ("upload", "boto3 upload"),
            ("pull", "voltx pull"),
            ("download", "boto3 download"),
        ):
            median = statistics.median(results[label])
            print(f"{name:16s}{median:10.2f}{args.size_mib / median:10.1f}")
        # Each round's two runs went back to back: the median of the rounds' ratios is the least
        # disturbed by the load of the machine drifting during the bench.
        push_ratio = statistics.median(
            u / p for u, p in zip(results["upload"], results["push"], strict=True)
        )
        pull_ratio = statistics.median(
            d / p for d, p in zip(results["download"], results["pull"], strict=True)
        )
        print(f"\nratio voltx/boto3 upload:   {push_ratio:.2f}  (median of rounds; target >= 0.8)")
        print(f"ratio voltx/boto3 download: {pull_ratio:.2f}  (median of rounds; target >= 0.8)")

        again = transfer(local, ArtifactStore.open(remote_url), ["bench_blob"])
        print(
            f"re-push of the unchanged artifact: {again.bytes_moved} bytes moved, "
            f"{again.blobs_moved} blob(s) moved, {again.blobs_skipped} skipped"
        )
    server.stop()
    ok = push_ratio >= 0.8 and pull_ratio >= 0.8 and again.bytes_moved == 0
    return 0 if ok else 1


def _delete_prefix(client: object, prefix: str) -> None:
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)  # type: ignore[attr-defined]
    for item in listing.get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
