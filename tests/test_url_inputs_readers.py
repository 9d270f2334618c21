"""0.2's readers on compressed and archived inputs, streamed (docs/inputs.md).

Files are recognised by their first bytes (a URL input arrives under its artifact's name, without
a suffix): gzip, zstandard, bzip2, and tar archives of any of them, read member by member without
extracting anything to disk. The Stack reader's memory stays bounded on a large archive.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import random
import tarfile
import tracemalloc
from pathlib import Path

import pytest
import zstandard

from _url_server import jsonl, tar
from voltx_phases.datasets import readers
from voltx_phases.datasets.readers import ReadStats
from voltx_phases.datasets.schema import DatasetLineError

ROWS = [
    {"content": f"def k{i}(v):\n    return v - {i}\n" * 4, "path": f"k{i}.py"} for i in range(7)
]


def paths(path: Path) -> list[str]:
    return [document.path for document in readers.read_stack(path)]


@pytest.mark.parametrize(
    "encode",
    [
        lambda data: zstandard.ZstdCompressor().compress(data),
        bz2.compress,
        gzip.compress,
        lambda data: data,
    ],
    ids=["zst", "bz2", "gz", "plain"],
)
def test_a_compressed_file_without_a_suffix_is_read_by_its_first_bytes(
    tmp_path: Path, encode: object
) -> None:
    path = tmp_path / "raw_stack"  # how the worker names a single-file URL input
    path.write_bytes(encode(jsonl(ROWS)))  # type: ignore[operator]
    assert paths(path) == [row["path"] for row in ROWS]


def test_tar_gz_members_are_streamed_in_order_and_others_left_out(tmp_path: Path) -> None:
    path = tmp_path / "stack_python.tar.gz"
    path.write_bytes(
        tar(
            {
                "stack/a.jsonl": jsonl(ROWS[:3]),
                "stack/README.md": b"# not a dataset",
                "stack/b.jsonl.gz": gzip.compress(jsonl(ROWS[3:5])),
                "stack/c.jsonl.zst": zstandard.ZstdCompressor().compress(jsonl(ROWS[5:])),
            }
        )
    )
    stats = ReadStats()
    documents = list(readers.read_stack(path, stats=stats))
    assert [d.path for d in documents] == [row["path"] for row in ROWS]
    assert stats.records == len(ROWS)
    assert list(tmp_path.iterdir()) == [path]  # nothing extracted beside it


def test_plain_tar_and_a_folder_of_archives(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "one.tar").write_bytes(tar({"x.jsonl": jsonl(ROWS[:2])}, mode="w"))
    (folder / "two.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl(ROWS[2:])))
    (folder / "notes.txt").write_text("left out")
    assert paths(folder) == [row["path"] for row in ROWS]


def test_a_bad_line_in_an_archive_member_names_the_member(tmp_path: Path) -> None:
    path = tmp_path / "bad.tar.gz"
    path.write_bytes(tar({"part/a.jsonl": jsonl(ROWS[:1]) + b"{not json\n"}))
    with pytest.raises(DatasetLineError, match=r"bad.tar.gz/part/a.jsonl:2: not valid JSON"):
        list(readers.read_stack(path))


def test_a_cut_short_zst_is_a_read_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.zst"
    data = zstandard.ZstdCompressor().compress(jsonl(ROWS * 50))
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetLineError, match=r"cut\.jsonl\.zst"):
        list(readers.read_stack(path))


def test_stack_reader_memory_is_bounded_on_a_large_tar_zst(tmp_path: Path) -> None:
    """40 MB of JSONL inside a .tar inside .zst: the reader's peak stays under 4 MB (about 2)."""
    # Source-like text that compresses as code does (a few times), not a thousand times.
    words = [f"{random.Random(n).getrandbits(40):x}" for n in range(5000)]
    pick = random.Random(1)

    def body(i: int) -> str:
        return "".join(f"v{i} = {' + '.join(pick.choices(words, k=8))}\n" for _ in range(20))

    lines = b"".join(
        (json.dumps({"content": f"# file {i}\n{body(i)}"}) + "\n").encode() for i in range(20_000)
    )
    path = tmp_path / "big.tar.zst"
    with (
        open(path, "wb") as out,
        zstandard.ZstdCompressor().stream_writer(out) as packed,
        tarfile.open(fileobj=packed, mode="w|") as archive,
    ):
        info = tarfile.TarInfo("big.jsonl")
        info.size = len(lines)
        archive.addfile(info, io.BytesIO(lines))
    size = len(lines)
    del lines
    tracemalloc.start()
    try:
        count = sum(1 for _ in readers.read_stack(path, max_bytes=10**6))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert size > 35e6 and peak < 4e6, f"peak {peak / 1e6:.1f} MB for {size / 1e6:.0f} MB"
