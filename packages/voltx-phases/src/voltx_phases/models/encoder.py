"""The CNN code encoder of phases 1.1 and 1.3 (`docs/phases.md`, 1.1), and code-to-frame encoding.

    ids [B,L] -> Embedding(V,128) -> Conv1d(128->256,k3) -> GELU -> Conv1d(256->256,k5) -> GELU
              -> Conv1d(256->256,k7) -> GELU -> features [B,L,256]
    role_probs   = softmax(role_head(features))          [B,L,16]
    token_embeds = embed_head(features)                  [B,L,256]
    summary      = L2norm(mean over positions of token_embeds)

5,149,712 parameters at full size. Tensor names are the original's (`embed.weight`,
`conv1.weight`, ..., `role_head.*`, `embed_head.*`), so `code_encoder.safetensors` files written by
the Rust implementation load unchanged. There is no LayerNorm: the original has none, whatever
its docs say.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from voltx_phases.models.layers import candle_linear_init

NUM_SLOTS = 16
SLOT_DIM = 256


@attrs.frozen
class EncoderShape:
    """Sizes of the encoder; `full()` is the original's."""

    vocab_size: int = 32768
    embed_dim: int = 128
    hidden_dim: int = SLOT_DIM
    num_roles: int = NUM_SLOTS
    max_seq_len: int = 512
    # A role whose summed probability over the text is at most this leaves its slot empty.
    role_threshold: float = 0.05


@attrs.frozen
class EncoderOutput:
    features: torch.Tensor  # [B, L, H] per-token CNN features (the decoder's training context)
    role_probs: torch.Tensor  # [B, L, R]
    token_embeds: torch.Tensor  # [B, L, H]
    summary: torch.Tensor  # [B, H], unit length


class CodeEncoder(nn.Module):
    """Token ids to per-token features, role probabilities, token embeddings and a summary."""

    def __init__(self, shape: EncoderShape = EncoderShape()) -> None:
        super().__init__()
        self.shape = shape
        hidden = shape.hidden_dim
        self.embed = nn.Embedding(shape.vocab_size, shape.embed_dim)
        self.conv1 = nn.Conv1d(shape.embed_dim, hidden, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(hidden, hidden, kernel_size=5, padding=2)
        self.conv3 = nn.Conv1d(hidden, hidden, kernel_size=7, padding=3)
        self.role_head = nn.Linear(hidden, shape.num_roles)
        self.embed_head = nn.Linear(hidden, hidden)
        nn.init.normal_(self.embed.weight)
        for conv in (self.conv1, self.conv2, self.conv3):
            candle_linear_init(conv, conv.in_channels * conv.kernel_size[0], conv.in_channels)
        for linear in (self.role_head, self.embed_head):
            candle_linear_init(linear, linear.in_features, linear.in_features)

    def features(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Per-token features. With `lengths`, positions past each text's end are zeroed between
        layers, which is exactly what a convolution over that text alone (zero padding) sees."""
        mask = None
        if lengths is not None:
            positions = torch.arange(ids.shape[1], device=ids.device)
            mask = (positions[None, :] < lengths[:, None]).unsqueeze(1).to(self.embed.weight.dtype)
        x = self.embed(ids).transpose(1, 2)
        for conv in (self.conv1, self.conv2, self.conv3):
            if mask is not None:
                x = x * mask
            x = F.gelu(conv(x))
        features: torch.Tensor = x.transpose(1, 2)
        return features

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> EncoderOutput:
        """Training runs without `lengths`: the original trained on padded batches unmasked, and
        its checkpoints expect that. Inference passes `lengths` to encode texts independently."""
        features = self.features(ids, lengths)
        role_probs = torch.softmax(self.role_head(features), dim=-1)
        token_embeds = self.embed_head(features)
        # The summary's mean includes padded positions, as the original's does.
        summary = F.normalize(token_embeds.mean(dim=1), dim=-1)
        return EncoderOutput(features, role_probs, token_embeds, summary)


def expected_shapes(shape: EncoderShape) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of an encoder weights file."""
    return {name: tuple(t.shape) for name, t in CodeEncoder(shape).state_dict().items()}


@attrs.frozen
class SlotFrames:
    """Frames as the soft core reads them: R0 slot vectors, which are present, and their gamma."""

    vectors: torch.Tensor  # [B, 16, 256], unit length where present, zero elsewhere
    present: torch.Tensor  # [B, 16] bool
    gamma: torch.Tensor  # [B, 16] certainty min(W_r, 1)


def encode_frames(encoder: CodeEncoder, ids: torch.Tensor, lengths: torch.Tensor) -> SlotFrames:
    """Role-weighted aggregation of token embeddings into 16 slots (`docs/formats.md`, problem
    frames).

    For role r: W_r = sum_t p(r|t); when W_r > threshold, slot r holds
    L2norm(sum_t p(r|t) e_t / W_r). Padded positions are masked, so a batch gives each text the
    frame it would get alone (the original encoded one text at a time).
    """
    output = encoder(ids, lengths)
    mask = (torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]).float()
    weights = output.role_probs * mask[:, :, None]  # [B, L, R]
    total = weights.sum(dim=1)  # [B, R]
    pooled = torch.einsum("blr,blh->brh", weights, output.token_embeds)
    present = total > encoder.shape.role_threshold
    vectors = F.normalize(pooled / total.clamp_min(1e-12)[:, :, None], dim=-1)
    vectors = vectors * present[:, :, None]
    return SlotFrames(vectors=vectors, present=present, gamma=total.clamp(max=1.0))


def slot_context_mask(present: torch.Tensor) -> torch.Tensor:
    """The decoder's cross-attention mask over a frame's slots [B, 16]: the filled ones. A frame
    with no filled slot (an empty text) attends to all 16 zero vectors rather than to nothing."""
    return present | ~present.any(dim=-1, keepdim=True)
