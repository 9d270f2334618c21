"""The example's phase functions: each reads `ctx.inputs` and writes `ctx.outputs`."""

from __future__ import annotations

import collections
import io
import json
import random
import sysconfig
import tokenize
from pathlib import Path

from voltx import PhaseContext, PhaseError


def collect_corpus(ctx: PhaseContext) -> None:
    """Sample up to `max_files` .py files into ``corpus.jsonl`` ({"path", "content"} per line)."""
    config = ctx.config
    root = Path(config.source_dir or sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise PhaseError(ctx.phase_id, f"source_dir {root} is not a folder")
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)
    # Seeded sample, so the same config gives the same corpus (and the same fingerprint
    # downstream means the same numbers).
    random.Random(config.seed).shuffle(files)
    chosen = sorted(files[: config.max_files])
    with open(ctx.outputs["ex_corpus"] / "corpus.jsonl", "w", encoding="utf-8") as out:
        for index, path in enumerate(chosen, 1):
            try:
                content = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            out.write(json.dumps({"path": path.relative_to(root).as_posix(), "content": content}))
            out.write("\n")
            ctx.progress(index, len(chosen))
    ctx.log.info("corpus written", files=len(chosen), root=str(root))


def _documents(ctx: PhaseContext) -> list[dict[str, str]]:
    with open(ctx.input_file("ex_corpus", "*.jsonl"), encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


def count_tokens(ctx: PhaseContext) -> None:
    """Count token kinds and names over the corpus."""
    kinds: collections.Counter[str] = collections.Counter()
    names: collections.Counter[str] = collections.Counter()
    skipped = 0
    documents = _documents(ctx)
    for index, doc in enumerate(documents, 1):
        try:
            for token in tokenize.generate_tokens(io.StringIO(doc["content"]).readline):
                kinds[tokenize.tok_name[token.type]] += 1
                if token.type == tokenize.NAME:
                    names[token.string] += 1
        except (tokenize.TokenError, SyntaxError):
            skipped += 1  # a test fixture with deliberately broken syntax, for example
        ctx.progress(index, len(documents), tokens=float(sum(kinds.values())))
    result = {
        "files": len(documents),
        "untokenizable_files": skipped,
        "tokens": sum(kinds.values()),
        "kinds": dict(kinds.most_common()),
        "top_names": names.most_common(ctx.config.top_k),
    }
    (ctx.outputs["ex_token_counts"] / "token_counts.json").write_text(json.dumps(result, indent=1))


def line_stats(ctx: PhaseContext) -> None:
    """Line counts and lengths over the corpus."""
    total = blank = comments = longest = 0
    per_file = []
    for doc in _documents(ctx):
        lines = doc["content"].splitlines()
        total += len(lines)
        blank += sum(1 for line in lines if not line.strip())
        comments += sum(1 for line in lines if line.lstrip().startswith("#"))
        longest = max([longest, *(len(line) for line in lines)])
        per_file.append((doc["path"], len(lines)))
    per_file.sort(key=lambda item: item[1], reverse=True)
    result = {
        "lines": total,
        "blank": blank,
        "comments": comments,
        "longest_line": longest,
        "largest_files": per_file[:10],
    }
    (ctx.outputs["ex_line_stats"] / "line_stats.json").write_text(json.dumps(result, indent=1))


def write_report(ctx: PhaseContext) -> None:
    """Join both analyses into ``report.md``."""
    tokens = json.loads(ctx.input_file("ex_token_counts", "*.json").read_text())
    lines = json.loads(ctx.input_file("ex_line_stats", "*.json").read_text())
    top = ", ".join(f"`{name}` ({count})" for name, count in tokens["top_names"][:10])
    report = "\n".join(
        [
            "# Corpus report",
            "",
            f"- files: {tokens['files']} ({tokens['untokenizable_files']} not tokenizable)",
            f"- lines: {lines['lines']} ({lines['blank']} blank, {lines['comments']} comments)",
            f"- tokens: {tokens['tokens']}",
            f"- longest line: {lines['longest_line']} characters",
            f"- most frequent names: {top}",
            "",
            "| largest files | lines |",
            "|---|---|",
            *(f"| {path} | {count} |" for path, count in lines["largest_files"]),
            "",
        ]
    )
    (ctx.outputs["ex_report"] / "report.md").write_text(report)
