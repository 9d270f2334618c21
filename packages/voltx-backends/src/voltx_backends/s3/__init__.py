"""Artifact stores on S3 and S3-compatible servers: ``store = "s3://bucket/prefix"``.

How voltx opens one, without voltx importing this package
---------------------------------------------------------
Storage is an fsspec protocol, so voltx has no storage hook of its own. A store URL goes from
`ArtifactStore.open(url, **storage_options)` to `voltx.store._backing.FsspecBacking`, which asks
fsspec for a filesystem. Before taking fsspec's default for a protocol ``p`` (s3fs, for
``s3``), it looks for an implementation registered with fsspec under the name ``voltx-p``, and
uses that one when there is. This package registers ``voltx-s3`` through fsspec's own
entry-point group (``fsspec.specs`` in its ``pyproject.toml``), so:

- installing voltx-backends is all it takes: every process that opens an ``s3://`` store (the
  CLI, a worker, a notebook) gets `VoltxS3FileSystem`, with no import and no configuration;
- other code in the same environment that opens ``s3://`` URLs with fsspec (pandas, datasets)
  still gets plain s3fs: nothing is overridden;
- without voltx-backends, ``s3://`` stores still work through plain s3fs, untuned.

`VoltxS3FileSystem` is s3fs's filesystem with voltx's settings applied and its large transfers
replaced: multipart uploads and ranged downloads of `part_size` pieces, `max_concurrency` at
once, each piece retried on its own with exponential backoff and full jitter; manifests written
create-only with ``If-None-Match: *`` (moto enforces it, as AWS does). See `filesystem`.

Settings, and where credentials come from
------------------------------------------
`S3Settings` (see `settings`) comes from storage options passed in code, then ``VOLTX_S3_*``
environment variables (``VOLTX_S3_PART_SIZE=64MiB``, ``VOLTX_S3_MAX_CONCURRENCY=16``), then
defaults. fsspec's own configuration (``~/.config/fsspec/*.json``, ``FSSPEC_*`` variables)
feeds the storage options too, since fsspec applies it to every filesystem it makes: its
``voltx-s3`` section may hold voltx's settings, its ``s3`` section only s3fs's own options
(every s3fs user in the environment reads that one). The endpoint, region, profile
and keys are best left to the usual AWS environment (``AWS_ENDPOINT_URL_S3``, ``AWS_REGION``,
``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``...), which botocore reads itself: a secret then never
passes through voltx at all. Workers inherit the environment of the process that starts them
(the local backend passes it on; the ssh and vast backends send the ``AWS_*`` and ``VOLTX_S3_*``
variables, or the keys of the AWS profile in use, in the job's 0600 env file: see
`voltx_backends._store_env`), so nothing about the store travels on a command line or in a job
file. A key given in code is
registered with voltx's log redaction.

    from voltx.store import ArtifactStore
    store = ArtifactStore.open("s3://my-bucket/voltx", part_size="64MiB", max_concurrency=16)
"""

from voltx_backends.s3.filesystem import VoltxS3FileSystem
from voltx_backends.s3.settings import S3Settings, parse_size

__all__ = ["S3Settings", "VoltxS3FileSystem", "parse_size"]
