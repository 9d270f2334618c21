"""Decoding speed of the code decoder: the key/value cache against full recompute.

    python bench/generate.py [--tokens 256] [--batch 16] [--repeat 5] [--threads 1]

The full-size decoder of phase 1.2 (vocab 32,768, embed 128, width 256, FFN 1,024, max_len 256;
docs/formats.md, code_decoder) with random weights (its speed does not depend on them; the token
and position tables, zero at initialisation, are drawn so that logits differ), on the CPU,
decodes `--batch` rows greedily for exactly `--tokens` tokens (no `<eos>` stop) from a random
context of 16 slot vectors, twice per pair:

- **cache**: `CodeDecoder.generate(..., use_cache=True)`, one position per step against the
  cached keys and values;
- **recompute**: `use_cache=False`, the whole prefix through the layer at every step (what
  the decoder did before the cache).

The two run as `--repeat` pairs (at least 5), back to back, the order alternating from pair to
pair so that a load that comes and goes on a shared machine hits both alike. Printed: each
pair's tokens per second for both and their ratio; whether both gave the same ids (they must);
then the median of the per-pair ratios with the lowest and highest. Every repeat decodes the
full `--tokens`: the headline is at 256 tokens, batch 16 (one to two minutes of recompute per
pair on two shared cores). The last line is the ratio; target at least 10.

One torch thread by default (`--threads 0` keeps torch's default): on a machine whose cores
other work shares, OpenMP threads waiting for each other swamp the cached path's small
operations (a 256-token decode measured 1.7 s on one thread and 7 to 25 s on two, under load),
which would measure the machine's load rather than the decoder; the tiny training profiles pin
one thread for the same reason.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256, help="tokens decoded per row")
    parser.add_argument("--batch", type=int, default=16, help="rows decoded at once")
    parser.add_argument("--repeat", type=int, default=5, help="timed pairs, at least 5")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.repeat < 5:
        parser.error("--repeat must be at least 5: a median of fewer pairs says little")
    if not 1 <= args.tokens <= 256:
        parser.error("--tokens must be within the decoder's max_len, 256")

    import torch

    from voltx_phases.models.decoder import CodeDecoder, DecoderShape

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    decoder = CodeDecoder(DecoderShape()).eval()
    with torch.no_grad():
        decoder.token_embed.normal_()
        decoder.pos_encoding.normal_(std=0.1)
    context = torch.nn.functional.normalize(torch.randn(args.batch, 16, 256), dim=-1)
    print(
        f"decoder: {sum(p.numel() for p in decoder.parameters()):,} parameters, batch "
        f"{args.batch}, {args.tokens} tokens per row; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, cpu"
    )

    def decode(use_cache: bool) -> tuple[float, list[list[int]]]:
        started = time.perf_counter()
        with torch.inference_mode():
            ids = decoder.generate(context, args.tokens, eos_id=None, use_cache=use_cache)
        return time.perf_counter() - started, ids

    decode(True)  # warm-up: first-call allocations are not what is measured
    tokens = args.batch * args.tokens
    ratios, same = [], True
    for pair in range(args.repeat):
        order = (True, False) if pair % 2 == 0 else (False, True)
        timings = {}
        outputs = {}
        for use_cache in order:
            timings[use_cache], outputs[use_cache] = decode(use_cache)
        same = same and outputs[True] == outputs[False]
        ratio = timings[False] / timings[True]
        ratios.append(ratio)
        print(
            f"pair {pair + 1}: cache {tokens / timings[True]:8.0f} tokens/s "
            f"({timings[True]:.2f} s), recompute {tokens / timings[False]:8.0f} tokens/s "
            f"({timings[False]:.2f} s), ratio {ratio:.1f}"
        )
    print(f"identical ids with and without the cache in every pair: {same}")
    print(f"median of {len(ratios)} pairs; lowest {min(ratios):.1f}, highest {max(ratios):.1f}")
    print(
        f"decode with cache / full recompute ratio: {statistics.median(ratios):.1f} (target >= 10)"
    )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
