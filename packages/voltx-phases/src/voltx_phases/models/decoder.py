"""The code decoder of phase 1.2 (`docs/phases.md`, 1.2): one pre-norm layer, single-head attention.

    x  = input_proj(token_embed[ids]) + pos_encoding[:L]
    x += SelfAttn(RMSNorm(x))          causal; Q, K, V = Linear(256->256); scores / sqrt(256)
    x += CrossAttn(RMSNorm(x), ctx)    Q from x; K, V from the context; no mask by default
    x += ffn2(GELU(ffn1(RMSNorm(x))))
    logits = output_proj(x) @ token_embed^T                            (tied output)

5,246,848 parameters at full size (4,194,304 of them in `token_embed`). Tensor names are the
original's (`token_embed`, `input_proj.*`, `pos_encoding`, `self_norm.weight`, `self_q/k/v.*`,
`cross_norm.weight`, `cross_q/k/v.*`, `ffn_norm.weight`, `ffn1.*`, `ffn2.*`, `output_proj.*`), so
the Rust implementation's `code_decoder.safetensors` loads unchanged. There is no output
projection after either attention, as in the original. `token_embed` and `pos_encoding` start
at zero, as candle's `VarBuilder::get` initialised them.

    from voltx_phases.models.loading import load_decoder
    decoder = load_decoder("code_decoder.safetensors")       # or the folder holding it
    ids = decoder.generate(context)                           # context [B, S, 256], stops at <eos>

Generation keeps a key/value cache (`DecoderCache`): each step runs the layer on the newest
token only, attending to the keys and values of the earlier positions, which are computed once.
Its greedy output is the full recompute's, token for token (`generate(..., use_cache=False)`
keeps the recompute, for checks and for `bench/generate.py`).
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from voltx_phases.models.encoder import SLOT_DIM
from voltx_phases.models.layers import RMSNorm, candle_linear_init
from voltx_phases.models.vocabulary import EOS_ID, PAD_ID

# The decoder starts from id 0 (`<pad>`), not `<bos>`: the original's convention, which its
# checkpoints were trained with.
DECODER_BOS_ID = PAD_ID


@attrs.frozen
class DecoderCache:
    """What incremental decoding keeps between steps (`CodeDecoder.step`).

    `keys` and `values` [B, 1, max_len, 256] are filled up to `length`; the tensors are shared
    between a cache and the one `step` returns, so an older cache must not be stepped again.
    """

    keys: torch.Tensor
    values: torch.Tensor
    length: int
    cross_keys: torch.Tensor  # [B, 1, S, 256]
    cross_values: torch.Tensor
    cross_mask: torch.Tensor | None  # [B, 1, 1, S]


@attrs.frozen
class DecoderShape:
    """Sizes of the decoder; the defaults are the original's."""

    vocab_size: int = 32768
    embed_dim: int = 128
    model_dim: int = SLOT_DIM
    ffn_dim: int = 1024
    max_len: int = 256


class CodeDecoder(nn.Module):
    """Token ids and a context of 256-d vectors to next-token logits."""

    def __init__(self, shape: DecoderShape = DecoderShape()) -> None:
        super().__init__()
        self.shape = shape
        dim = shape.model_dim
        self.token_embed = nn.Parameter(torch.zeros(shape.vocab_size, shape.embed_dim))
        self.input_proj = nn.Linear(shape.embed_dim, dim)
        self.pos_encoding = nn.Parameter(torch.zeros(shape.max_len, dim))
        self.self_norm = RMSNorm(dim)
        self.self_q = nn.Linear(dim, dim)
        self.self_k = nn.Linear(dim, dim)
        self.self_v = nn.Linear(dim, dim)
        self.cross_norm = RMSNorm(dim)
        self.cross_q = nn.Linear(dim, dim)
        self.cross_k = nn.Linear(dim, dim)
        self.cross_v = nn.Linear(dim, dim)
        self.ffn_norm = RMSNorm(dim)
        self.ffn1 = nn.Linear(dim, shape.ffn_dim)
        self.ffn2 = nn.Linear(shape.ffn_dim, dim)
        self.output_proj = nn.Linear(dim, shape.embed_dim)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                candle_linear_init(module, module.in_features, module.in_features)

    def forward(
        self,
        ids: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits [B, L, V] for ids [B, L] (BOS first) and context [B, S, 256].

        `context_mask` [B, S] (True where a context vector is real) hides padded context from
        cross-attention; the original attended to all of it.
        """
        return self.logits(self.hidden(ids, context, context_mask))

    def hidden(
        self,
        ids: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The layer's output [B, L, 256], before the tied output projection."""
        length = ids.shape[1]
        if length > self.shape.max_len:
            raise ValueError(f"{length} tokens exceed the decoder's max_len {self.shape.max_len}")
        x: torch.Tensor = (
            self.input_proj(F.embedding(ids, self.token_embed)) + self.pos_encoding[:length]
        )
        h = self.self_norm(x)
        # Single head over the full model width, so the scale is 1/sqrt(256) as the original's.
        x = x + F.scaled_dot_product_attention(
            self.self_q(h), self.self_k(h), self.self_v(h), is_causal=True
        )
        h = self.cross_norm(x)
        mask = None if context_mask is None else context_mask[:, None, :]
        x = x + F.scaled_dot_product_attention(
            self.cross_q(h), self.cross_k(context), self.cross_v(context), attn_mask=mask
        )
        feed_forward: torch.Tensor = self.ffn2(F.gelu(self.ffn1(self.ffn_norm(x))))
        return x + feed_forward

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Tied output: project to the embedding width, then score against every token."""
        logits: torch.Tensor = self.output_proj(hidden) @ self.token_embed.T
        return logits

    def start_cache(
        self, context: torch.Tensor, context_mask: torch.Tensor | None = None
    ) -> DecoderCache:
        """An empty cache for `context` [B, S, 256]: cross-attention's keys and values, computed
        once, and room for `max_len` positions of self-attention keys and values."""
        batch = context.shape[0]
        dim = self.shape.model_dim
        # Kept as [B, 1 head, positions, 256]: torch's fused CPU attention takes this 4-d form,
        # twice as fast as the 3-d one at one query position (bench/generate.py).
        room = torch.empty(
            (batch, 1, self.shape.max_len, dim), device=context.device, dtype=context.dtype
        )
        return DecoderCache(
            keys=room,
            values=torch.empty_like(room),
            length=0,
            cross_keys=self.cross_k(context)[:, None],
            cross_values=self.cross_v(context)[:, None],
            cross_mask=None if context_mask is None else context_mask[:, None, None, :],
        )

    def step(self, ids: torch.Tensor, cache: DecoderCache) -> tuple[torch.Tensor, DecoderCache]:
        """Logits [B, V] for the next token after `ids` [B] (the newest token of each row), and
        the cache with this position added. The same arithmetic as `hidden` at one position."""
        position = cache.length
        if position >= self.shape.max_len:
            raise ValueError(f"the decoder's max_len {self.shape.max_len} is reached")
        x = self.input_proj(F.embedding(ids[:, None], self.token_embed))
        x = x + self.pos_encoding[position : position + 1]  # [B, 1, 256]
        h = self.self_norm(x)
        cache.keys[:, 0, position] = self.self_k(h)[:, 0]
        cache.values[:, 0, position] = self.self_v(h)[:, 0]
        length = position + 1
        # No mask: the cache holds only this position and earlier ones, which is causality.
        attended = F.scaled_dot_product_attention(
            self.self_q(h)[:, None], cache.keys[:, :, :length], cache.values[:, :, :length]
        )
        x = x + attended[:, 0]
        h = self.cross_norm(x)
        attended = F.scaled_dot_product_attention(
            self.cross_q(h)[:, None],
            cache.cross_keys,
            cache.cross_values,
            attn_mask=cache.cross_mask,
        )
        x = x + attended[:, 0]
        x = x + self.ffn2(F.gelu(self.ffn1(self.ffn_norm(x))))
        return self.logits(x[:, 0]), attrs.evolve(cache, length=length)

    @torch.no_grad()
    def generate(
        self,
        context: torch.Tensor,
        max_len: int | None = None,
        eos_id: int | None = EOS_ID,
        context_mask: torch.Tensor | None = None,
        use_cache: bool = True,
    ) -> list[list[int]]:
        """Greedy decoding from BOS (id 0) for each context [B, S, 256]; at most `max_len`
        tokens (default and limit: the decoder's max_len), stopping a sequence at `eos_id`.

        The returned ids exclude BOS and `<eos>`. The original never stopped early and always
        produced 128 tokens; passing ``eos_id=None`` does the same here. With `use_cache` each
        step runs one position against the cache; without, it recomputes the whole prefix.
        """
        limit = min(max_len or self.shape.max_len, self.shape.max_len)
        batch = context.shape[0]
        ids = torch.full((batch, 1), DECODER_BOS_ID, dtype=torch.long, device=context.device)
        finished = torch.zeros(batch, dtype=torch.bool, device=context.device)
        cache = self.start_cache(context, context_mask) if use_cache else None
        for _ in range(limit):
            if cache is not None:
                logits, cache = self.step(ids[:, -1], cache)
            else:
                # Only the last position is scored: 32,768 logits per step, not per position.
                logits = self.logits(self.hidden(ids, context, context_mask)[:, -1])
            # max's indices: the same choice as argmax, at half its cost on the CPU.
            next_ids = logits.max(dim=-1).indices
            if eos_id is not None:
                next_ids = torch.where(finished, torch.full_like(next_ids, eos_id), next_ids)
                finished |= next_ids == eos_id
            ids = torch.cat([ids, next_ids[:, None]], dim=1)
            if eos_id is not None and bool(finished.all()):
                break
        results = []
        for row in ids[:, 1:].tolist():
            if eos_id is not None and eos_id in row:
                row = row[: row.index(eos_id)]
            results.append(row)
        return results
