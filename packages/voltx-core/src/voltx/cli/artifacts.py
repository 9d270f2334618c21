"""``voltx artifacts list/add/get/show/gc/push/pull/verify/repair``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from voltx.cli._render import human_bytes, table


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "artifacts", help="list, add, get, show, gc, push, pull, verify and repair artifacts"
    )
    commands = parser.add_subparsers(dest="artifacts_command", required=True, metavar="ACTION")

    commands.add_parser("list", help="every named artifact").set_defaults(handler=cmd_list)

    add = commands.add_parser(
        "add", help="add a file or folder, or record a URL input (read later by the phase's host)"
    )
    add.add_argument("name")
    add.add_argument("path", metavar="PATH_OR_URL")
    add.add_argument(
        "--sha256", help="for a URL of one file: the digest its content must have (pins it)"
    )
    add.add_argument(
        "--token-env",
        metavar="VAR",
        help="for an http(s) URL: the environment variable holding a bearer token",
    )
    add.set_defaults(handler=cmd_add)

    get = commands.add_parser("get", help="write an artifact out to a path")
    get.add_argument("name", help="name, digest, or digest prefix")
    get.add_argument("dest", type=Path)
    get.add_argument(
        "--overwrite", action="store_true", help="replace what is already at the destination"
    )
    get.set_defaults(handler=cmd_get)

    show = commands.add_parser("show", help="an artifact's files and lineage")
    show.add_argument("name", help="name, digest, or digest prefix")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_show)

    gc = commands.add_parser("gc", help="remove data no ref points at")
    gc.add_argument("--dry-run", "-n", action="store_true", help="only say what would go")
    gc.set_defaults(handler=cmd_gc)

    # The project's store (or --store) is this side; the URL names the other one.
    push = commands.add_parser(
        "push", help="copy artifacts to another store, sending only what it lacks"
    )
    push.add_argument("dest", metavar="DEST_URL", help="the store to copy to, e.g. s3://bucket/p")
    push.add_argument("names", nargs="*", metavar="NAME", help="names or digests (default: all)")
    push.set_defaults(handler=cmd_push)

    pull = commands.add_parser(
        "pull", help="copy artifacts from another store, fetching only what this one lacks"
    )
    pull.add_argument("source", metavar="SOURCE_URL", help="the store to copy from")
    pull.add_argument("names", nargs="*", metavar="NAME", help="names or digests (default: all)")
    pull.set_defaults(handler=cmd_pull)

    verify = commands.add_parser(
        "verify", help="check every blob, manifest and ref (or the named artifacts' ones)"
    )
    verify.add_argument("names", nargs="*", metavar="NAME", help="names or digests (default: all)")
    verify.set_defaults(handler=cmd_verify)

    repair = commands.add_parser(
        "repair",
        help="re-fetch damaged files from another store; quarantine what cannot be fixed",
    )
    repair.add_argument("names", nargs="*", metavar="NAME", help="names or digests (default: all)")
    repair.add_argument(
        "--from", dest="source", metavar="URL", help="a store holding good copies, e.g. s3://b/p"
    )
    repair.set_defaults(handler=cmd_repair)


def _store(args: argparse.Namespace) -> Any:
    from voltx.project import find_project_file, load_project, resolve_store_url
    from voltx.store import ArtifactStore

    if args.store:
        return ArtifactStore.open(resolve_store_url(args.store, Path.cwd()))
    path = Path(args.config) if args.config else find_project_file()
    return ArtifactStore.open(load_project(path).store)


def cmd_list(args: argparse.Namespace) -> int:
    rows = [
        (
            a.name,
            a.short,
            a.kind,
            human_bytes(a.size),
            a.lineage.get("phase") or "added",
            a.created_at,
        )
        for a in sorted(_store(args).list(), key=lambda a: a.name)
    ]
    print(table(["name", "digest", "kind", "size", "made by", "created"], rows))
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from voltx.errors import ConfigError, SourceFileError
    from voltx.imports import add_artifact
    from voltx.remote_inputs import RemoteSource, record_remote
    from voltx.store.names import check_name
    from voltx.store.remote import is_url

    if is_url(args.path):
        # Only the URL's identity is stored; the bytes stay where they are until a host reads them.
        check_name(args.name)
        try:
            source = RemoteSource(url=args.path, sha256=args.sha256, token_env=args.token_env)
        except ValueError as exc:
            raise ConfigError([f"artifacts add {args.name}: {exc}"]) from None
        document = source.probe(args.name)
        artifact = record_remote(_store(args), args.name, source, document)
        size = "size unknown" if document.size is None else human_bytes(document.size)
        print(
            f"added {args.name} {artifact.short}: {len(document.files)} file(s) at {source.url}"
            f" ({size}), read by the phase's host; no bytes copied"
        )
        return 0
    if args.sha256:
        raise SourceFileError(
            args.path, "--sha256 pins a URL input; a local file is hashed as added"
        )
    artifact = add_artifact(_store(args), args.name, Path(args.path))
    print(f"added {args.name} {artifact.short} ({human_bytes(artifact.size)})")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    from voltx.errors import DestinationExistsError

    store = _store(args)
    if store.contains(args.dest):
        raise DestinationExistsError(
            str(args.dest), f"is inside store {store.url}; write artifacts out to a path outside it"
        )
    written = store.get(args.name, args.dest, overwrite=args.overwrite)
    print(f"wrote {written}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    artifact = _store(args).resolve(args.name)
    if args.json:
        print(json.dumps(artifact.to_json(), indent=1))
        return 0
    print(f"{args.name}: {artifact.digest}")
    print(f"kind {artifact.kind}, {len(artifact.files)} file(s), {human_bytes(artifact.size)}")
    print(f"created {artifact.created_at}")
    print("lineage:")
    for key, value in sorted(artifact.lineage.items()):
        print(f"  {key}: {json.dumps(value, sort_keys=True)}")
    print(
        table(
            ["file", "size", "sha256"],
            [(f.path, human_bytes(f.size), f.sha256[:16]) for f in artifact.files],
        )
    )
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    report = _store(args).gc(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(
        f"{verb} {len(report.manifests)} manifest(s), {len(report.blobs)} blob(s) "
        f"({human_bytes(report.freed_bytes)}), {len(report.staging)} stale staging file(s)"
    )
    return 0


def _other_store(url: str) -> Any:
    from voltx.project import resolve_store_url
    from voltx.store import ArtifactStore

    return ArtifactStore.open(resolve_store_url(url, Path.cwd()))


def cmd_push(args: argparse.Namespace) -> int:
    from voltx.store.transfer import transfer

    source, dest = _store(args), _other_store(args.dest)
    report = transfer(source, dest, args.names or None)
    _print_transfer("pushed", report, dest.url)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from voltx.store.transfer import transfer

    source, dest = _other_store(args.source), _store(args)
    report = transfer(source, dest, args.names or None)
    _print_transfer("pulled", report, source.url)
    return 0


def _print_transfer(verb: str, report: Any, other: str) -> None:
    direction = "to" if verb == "pushed" else "from"
    print(
        f"{verb} {len(report.artifacts)} artifact(s) {direction} {other}: "
        f"{report.blobs_moved} blob(s) moved ({human_bytes(report.bytes_moved)}), "
        f"{report.blobs_skipped} already there; {report.manifests_moved} manifest(s) and "
        f"{report.refs_moved} ref(s) written"
    )


def cmd_verify(args: argparse.Namespace) -> int:
    from voltx.store.integrity import check_store

    store = _store(args)
    problems = check_store(store, args.names or None)
    for problem in problems:
        print(f"damaged: {problem.describe()}")
    scope = f"{len(args.names)} artifact(s)" if args.names else f"store {store.url}"
    if not problems:
        print(f"verified {scope}: every ref, manifest and blob is intact")
        return 0
    print(
        f"{len(problems)} problem(s) in {scope}; `voltx artifacts repair --from URL` fetches good"
        " copies from another store, `voltx artifacts repair` quarantines what cannot be fixed"
    )
    return 1


def cmd_repair(args: argparse.Namespace) -> int:
    from voltx.store.integrity import repair_store

    store = _store(args)
    source = _other_store(args.source) if args.source else None
    report = repair_store(store, args.names or None, source=source)
    for problem in report.fixed:
        print(f"repaired: {problem.describe()} (fetched from {source.url if source else '?'})")
    for problem, where in report.quarantined:
        print(f"quarantined: {problem.describe()} -> {where}{_recreate(problem)}")
    for problem in report.unfixed:
        print(f"not repaired: {problem.describe()}{_recreate(problem)}")
    left = len(report.quarantined) + len(report.unfixed)
    if not report.fixed and not left:
        print("nothing to repair: every ref, manifest and blob is intact")
    elif left:
        print(f"{len(report.fixed)} repaired, {left} quarantined or missing: see above")
    else:
        print(f"{len(report.fixed)} repaired; the store is intact")
    return 1 if left else 0


def _recreate(problem: Any) -> str:
    return f"; re-create: {problem.recreate}" if problem.recreate else ""
