# Copyright 2026 The DyKen-Hyena contributors. Licensed under the Apache License, Version 2.0.
"""DyKen-Hyena configuration.

DyKen-Hyena (Wang, Wang & Luo, 2025, arXiv:2509.09940) turns non-verbal cues (audio, video) into
per-token convolution kernels that modulate the text embeddings before a BERT-family encoder.
The paper leaves the kernel generator, the alignment and most hyper-parameters unspecified; every
choice this implementation makes is a field below, so the paper's ablations can be run.
"""

from transformers import AutoConfig, PretrainedConfig
# New in transformers 5.20 (hence the floor in pyproject.toml). A plain `AutoConfig` entry would neither give
# text_config its BERT default nor build it from the dict a saved config.json holds.
from transformers.configuration_utils import SubConfigSpec

FUSIONS = ("dyken", "mag", "text")
ALIGNMENTS = ("ctc", "avg_pool", "conv1d", "none")
KERNEL_NORMALIZATIONS = ("softmax", "gated_softmax", "none")
DYNAMIC_CONV_IMPLEMENTATIONS = ("unfold", "band")
LONG_CONV_IMPLEMENTATIONS = ("fft", "direct")


class DyKenConfig(PretrainedConfig):
    r"""
    Configuration of a [`DyKenModel`] / [`DyKenForSequenceClassification`].

    Args:
        text_config (`dict` or `PretrainedConfig`, *optional*):
            Config of the BERT-family text encoder (any model whose `AutoModel` has `embeddings`, `encoder`
            and `pooler`, e.g. `bert`). Defaults to a bert-base-uncased-sized `BertConfig`.
        audio_feature_dim (`int`, defaults to 768):
            Width of the pre-extracted audio features (wav2vec 2.0 / WavLM base: 768).
        video_feature_dim (`int`, defaults to 256):
            Width of the pre-extracted video features (Faster R-CNN / Swin RoI features: 256).
        fusion (`str`, defaults to `"dyken"`):
            How the non-verbal features enter the model, so the paper's comparison runs through one code path:
            `"dyken"` (per-token dynamic kernels + Hyena modulation of the embeddings), `"mag"` (the MAG-BERT
            baseline: a multimodal adaptation gate on the embeddings, on aligned features) or `"text"` (text-only
            BERT; audio and video are ignored).
        alignment (`str`, *optional*):
            How each non-verbal sequence is related to the text tokens. `"ctc"`, `"avg_pool"`, `"conv1d"` are the
            official MIntRec alignment modes (each maps a sequence to the text length); `"none"` lets the
            cross-modal attention read the unaligned, masked sequences directly (DyKen only; MAG needs aligned
            features). With `"ctc"`, DyKen-Hyena takes each token's weighted *mean* of the frames (on the scale of one
            frame whatever the clip's length), MAG-BERT the official weighted sum. `avg_pool` averages each
            utterance's own real frames (the official code pools with a fixed stride over the padded sequence), and
            `conv1d` is the official bias-free map from frame positions to token positions.
            Defaults to `"ctc"` for MAG-BERT (the official baseline) and to `"none"` otherwise, as the
            trainer does: the paper leaves the alignment open, with `"none"` DyKen-Hyena learned the synthetic cues
            as it did with `"ctc"` (benchmarks/results/cue_learning.jsonl), at the same step time and with 24-35 %
            less activation memory (benchmarks/results/model_cpu_float32.md). The MIntRec presets use `"ctc"`.
        max_text_length (`int`, defaults to 50):
            Longest text (in word pieces, with [CLS]/[SEP]) the model accepts; at least 2 (room for [CLS] and
            [SEP], and the Hyena long filter's time axis divides by `max_text_length - 1`). It sizes the CTC
            alignment's output (`max_text_length + 1` slots), the conv1d alignment and the time axis of that filter.
            Official: 30 (MIntRec), 50 (MIntRec2.0).
        max_audio_length (`int`, defaults to 480):
            Longest audio sequence; only the conv1d alignment depends on it (480 MIntRec, 400 MIntRec2.0).
        max_video_length (`int`, defaults to 230):
            Longest video sequence; only the conv1d alignment depends on it (230 MIntRec, 180 MIntRec2.0).
        normalize_nonverbal_features (`bool`, defaults to `False`):
            Subtract each utterance's mean frame (over its real frames) from its audio and video features before the
            fusion, as cepstral mean normalisation does for speech: it removes speaker- and recording-level offsets,
            which otherwise let a model tell training clips apart by their offset instead of by what changes within
            them. Off by default, as in the official MIntRec code; applies to every fusion.
        alignment_lstm_layers (`int`, defaults to 2):
            Depth of the LSTM of the CTC alignment (2 in the official code).
        audio_frame_pooling (`int`, defaults to 1):
            With `alignment="none"`, the cross-modal attention reads the audio as the mean of each run of
            `audio_frame_pooling` consecutive frames (2: 40 ms steps for WavLM's 50 frames per second, still several
            per word); the aligned modes read every frame. 2 takes 9-12 % off the fusion's time. Measured over 3
            seeds (docs/experiments.md, "Audio frame pooling"): 2 learned the synthetic cues better, but on real text
            with uninformative audio and video it came 0.4 point of accuracy and 0.5 of macro-F1 below every frame,
            so every frame is read by default.
        cross_attention_hidden_size (`int`, defaults to 128):
            Width of the token-level cross-modal attention (text tokens query the audio and video sequences). Its
            key/value projection runs over every audio and video frame, the largest cost DyKen adds to a step
            with `alignment="none"`: 128 learned the synthetic cues as well as 256 did, at half that cost
            (docs/experiments.md, benchmarks/README.md).
        cross_attention_heads (`int`, defaults to 8):
            Heads of that attention; must divide `cross_attention_hidden_size` into an even width per head: the
            relative position code interleaves sine/cosine pairs, and a head must hold whole pairs.
        cross_attention_tied_key_value (`bool`, defaults to `True`):
            Keys and values come from one projection of the frames (the position code is added to the keys only);
            `False` gives them separate projections, as standard multi-head attention does. Tied, reading the
            frames costs one projection instead of two, which makes DyKen-Hyena's fusion cheaper than MAG-BERT's;
            on the synthetic cues both variants learned within the run-to-run spread (docs/experiments.md).
        cross_attention_dropout (`float`, defaults to 0.1):
            Dropout on each cross-modal attention's output (the per-token audio and video contexts).
        context_layer_norm (`bool`, defaults to `True`):
            A LayerNorm on each token's multimodal context, before the kernel generator: every context reaches the
            kernel generator at unit size, so a cue carried by one or two frames is as loud as one spread over many.
            Without it the context keeps the size of what the attention found (frames that agree add up, unrelated
            frames average out). Measured over 3 seeds (docs/experiments.md, "Context without LayerNorm"): without
            it, DyKen-Hyena on real text with uninformative audio and video came 0.9 point of accuracy and 1.8 of
            macro-F1 closer to text-only (still about 5 and 8 below), but on the synthetic cue job it lost the video
            cues in two seeds of three.
        cross_attention_locality (`list[float]`, *optional*):
            `[broadest, sharpest]` turns on a per-head Gaussian distance bias `-s (p_token - p_frame)^2` on the
            cross-modal attention's logits (p: relative place in the sentence / clip, 0 to 1), with s initialised
            from `broadest` to `sharpest` across the heads (geometric steps) and learned per head. `[2, 2000]`: a
            sharp head gives a frame 5 % of the clip away a bias of -5, so it reads the frames under its own token.
            Off (`None`) by default: on the synthetic default job `[2, 2000]` made the generated kernels token-level
            (removing the cue moved the cue word's kernel 5.6-8.7x more than the other tokens', against 1.4-2.0x
            without it) but delayed the learning of the cue within the job's 8 epochs (docs/experiments.md).
        kernel_generator_hidden_size (`int`, defaults to 128):
            Width of the hidden layers of the kernel generator MLP.
        kernel_generator_layers (`int`, defaults to 2):
            Number of linear layers of the kernel generator (1 = a single linear map, as in Wu et al.'s
            DynamicConv; 2 = Linear-GELU-Linear, ...).
        kernel_heads (`int`, defaults to 12):
            Kernel heads (Wu et al. 2019): each generated kernel is shared by `channels / kernel_heads` channels of
            the Hyena projection. Must divide `(hyena_order + 1) * hidden_size` (or `hidden_size` without gating).
        short_kernel_size (`int`, defaults to 3):
            Taps Ks of the (dynamic) short convolution; odd, because the convolution is centred (an encoder sees
            both neighbours). The paper compared 1, 3 and 5; 3 was best.
        kernel_normalization (`str`, defaults to `"softmax"`):
            `"softmax"` normalises each generated kernel with a softmax over its taps (Wu et al. 2019), so its taps
            sum to 1; a one-tap kernel (Ks = 1) would then always be 1 and the audio and video could not reach the
            model, so Ks = 1 needs one of the others. `"gated_softmax"` adds one "off" logit fixed at 0 to the
            softmax and drops it: the taps sum to at most 1, by an amount the context chooses, at every Ks.
            `"none"` leaves the kernel raw.
        kernel_dropout (`float`, defaults to 0.0):
            DropConnect on the generated kernel weights during training.
        dynamic_conv_implementation (`str`, defaults to `"band"`):
            `"unfold"` (a strided view of the padded input times the kernels) or `"band"` (a band matrix per head).
            Both compute the same function; `benchmarks/bench_model.py` records which is faster.
        use_dynamic_short_conv (`bool`, defaults to `True`):
            Ablation switch. `False` replaces the generated kernels by a static learned depthwise short
            convolution (the original Hyena short filter), so the non-verbal input no longer reaches the text.
        use_long_conv (`bool`, defaults to `True`):
            Ablation switch for the implicit long filter (FFT convolution over the whole sequence).
        use_gating (`bool`, defaults to `True`):
            Ablation switch for Hyena's element-wise gates (x0, x1); without them only the value branch is kept.
        hyena_order (`int`, defaults to 2):
            Order N of the Hyena recurrence: the input is projected to (N + 1) streams, N - 1 long convolutions.
        hyena_hidden_size (`int`, *optional*):
            Width w of each Hyena stream (x0, x1, v): the input projection maps d -> (N + 1) w and the output
            projection w -> d. `None` (the default) is safari's d -> (N + 1) d. Narrower streams cost less, but on the
            synthetic cue job they learned the cue less well: with MiniLM (d = 384), w = 128 and 256 gave cue-intent
            F1 71.2 ± 2.8 and 63.4 ± 12.1 over 3 seeds, against 96.0 ± 3.5 at w = d. With a bert-base encoder, w = 256
            takes the fusion from 60 to 43 ms per training step at the MIntRec shapes on 2 CPU cores
            (docs/experiments.md, "Narrower Hyena streams").
        hyena_filter_order (`int`, defaults to 64):
            Width of the sine-activated MLP that generates the implicit long filter.
        hyena_filter_embedding_dim (`int`, defaults to 3):
            Positional features fed to that MLP (normalised time + (dim - 1) / 2 sine/cosine bands); odd, >= 3.
        hyena_filter_sine_frequency (`float`, defaults to 1.0):
            Initial frequency of the sine activations.
        hyena_bidirectional (`bool`, defaults to `True`):
            `True` uses a two-sided long filter (tokens see the future, as an encoder should); `False` keeps the
            original causal filter.
        long_conv_implementation (`str`, defaults to `"fft"`):
            `"fft"` (rfft/irfft with zero padding to 2L) or `"direct"` (an L x L Toeplitz matmul). Same function.
        hyena_dropout (`float`, defaults to 0.1):
            Dropout on the Hyena output before it is added to the embeddings.
        zero_init_modulation (`bool`, defaults to `False`):
            `True` starts Hyena's output projection at zero, so that at initialisation the encoder receives exactly
            its pretrained embeddings (a new model is the text-only model) and the modulation grows only as training
            asks for it. `False` keeps nn.Linear's default initialisation, as safari's operator does. On real
            MIntRec2.0 text with uninformative audio and video, `True` is level with text-only BERT (over 5 seeds 0.17
            point of accuracy below it and 0.04 of macro-F1 above, where `False` is 0.55 / 0.06 below), but the
            quickstart's synthetic job then learns its cues far less within its budget (cue-intent F1 44.8 against
            96.0; 64.6 with twice the epochs): the fusion learns them starting from the random modulation that
            `False` starts with (docs/experiments.md, "The modulation's initial size"). Not the default for that
            reason.
        nonverbal_dropout (`float`, defaults to 0.0):
            Modality dropout while training: the probability that an utterance is seen without its audio and video
            (both masked, as a missing modality is), so that the text path stays a classifier of its own. Applies
            to DyKen-Hyena and MAG-BERT; measured in docs/experiments.md.
        mag_beta_shift (`float`, defaults to 0.005):
            MAG's beta: scale of the non-verbal shift relative to the embedding norm.
        mag_dropout (`float`, defaults to 0.5):
            Dropout after MAG's LayerNorm (0.5 in the MIntRec configs).
        classifier_dropout (`float`, *optional*):
            Dropout before the classifier; defaults to the text encoder's `hidden_dropout_prob`.

    Example:

    ```python
    >>> from configuration_dyken import DyKenConfig
    >>> from modeling_dyken import DyKenForSequenceClassification
    >>> config = DyKenConfig(num_labels=20, short_kernel_size=5, alignment="none")
    >>> model = DyKenForSequenceClassification(config)
    ```
    """

    model_type = "dyken"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    text_config: dict | PretrainedConfig | None = None
    audio_feature_dim: int = 768
    video_feature_dim: int = 256
    fusion: str = "dyken"
    alignment: str | None = None
    max_text_length: int = 50
    max_audio_length: int = 480
    max_video_length: int = 230
    normalize_nonverbal_features: bool = False
    alignment_lstm_layers: int = 2
    audio_frame_pooling: int = 1
    cross_attention_hidden_size: int = 128
    cross_attention_heads: int = 8
    cross_attention_tied_key_value: bool = True
    cross_attention_dropout: float = 0.1
    cross_attention_locality: list | tuple | None = None
    context_layer_norm: bool = True
    kernel_generator_hidden_size: int = 128
    kernel_generator_layers: int = 2
    kernel_heads: int = 12
    short_kernel_size: int = 3
    kernel_normalization: str = "softmax"
    kernel_dropout: float = 0.0
    dynamic_conv_implementation: str = "band"
    use_dynamic_short_conv: bool = True
    use_long_conv: bool = True
    use_gating: bool = True
    hyena_order: int = 2
    hyena_hidden_size: int | None = None
    hyena_filter_order: int = 64
    hyena_filter_embedding_dim: int = 3
    hyena_filter_sine_frequency: float = 1.0
    hyena_bidirectional: bool = True
    long_conv_implementation: str = "fft"
    hyena_dropout: float = 0.1
    zero_init_modulation: bool = False
    nonverbal_dropout: float = 0.0
    mag_beta_shift: float = 0.005
    mag_dropout: float = 0.5
    classifier_dropout: float | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.alignment is None:
            self.alignment = "ctc" if self.fusion == "mag" else "none"
        self._validate()

    @property
    def hidden_size(self) -> int:
        return self.text_config.hidden_size

    @property
    def hyena_width(self) -> int:
        """Width of each Hyena stream (x0, x1, v): `hyena_hidden_size`, or the text width when it is None."""
        return self.hidden_size if self.hyena_hidden_size is None else self.hyena_hidden_size

    @property
    def hyena_channels(self) -> int:
        """Channels of the Hyena input projection: (N + 1) streams with gating, the value stream alone without."""
        return (self.hyena_order + 1) * self.hyena_width if self.use_gating else self.hyena_width

    def _validate(self):
        def check(ok: bool, field: str, allowed: str):
            if not ok:
                raise ValueError(f"DyKenConfig.{field}={getattr(self, field)!r} is invalid: expected {allowed}.")

        check(self.fusion in FUSIONS, "fusion", f"one of {FUSIONS}")
        check(self.alignment in ALIGNMENTS, "alignment", f"one of {ALIGNMENTS}")
        if self.fusion == "mag" and self.alignment == "none":
            raise ValueError(
                "DyKenConfig.alignment='none' is invalid with fusion='mag': MAG-BERT adds one audio and one video "
                "vector per token, so it needs an aligned sequence; use alignment='ctc' (official), 'avg_pool' or "
                "'conv1d'."
            )
        for field in (
            "audio_feature_dim", "video_feature_dim", "max_text_length", "max_audio_length", "max_video_length",
            "alignment_lstm_layers", "audio_frame_pooling", "cross_attention_hidden_size", "cross_attention_heads",
            "kernel_generator_hidden_size", "kernel_generator_layers", "kernel_heads", "hyena_filter_order",
        ):
            value = getattr(self, field)
            check(isinstance(value, int) and not isinstance(value, bool) and value > 0, field, "a positive integer")
        locality = self.cross_attention_locality
        check(
            locality is None
            or isinstance(locality, (list, tuple)) and len(locality) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in locality)
            and locality[0] <= locality[1],
            "cross_attention_locality",
            "None or [broadest, sharpest]: two positive numbers, broadest <= sharpest",
        )
        check(
            self.cross_attention_hidden_size % self.cross_attention_heads == 0,
            "cross_attention_heads",
            f"a divisor of cross_attention_hidden_size={self.cross_attention_hidden_size}",
        )
        check(
            self.cross_attention_hidden_size // self.cross_attention_heads % 2 == 0,
            "cross_attention_heads",
            f"a divisor of cross_attention_hidden_size={self.cross_attention_hidden_size} that leaves an even width "
            "per head (the relative position code interleaves sine/cosine pairs; a head must hold whole pairs)",
        )
        check(
            self.max_text_length >= 2,
            "max_text_length",
            "at least 2: room for [CLS] and [SEP] (the Hyena long filter's time axis divides by max_text_length - 1)",
        )
        check(
            isinstance(self.short_kernel_size, int) and self.short_kernel_size >= 1 and self.short_kernel_size % 2 == 1,
            "short_kernel_size",
            "an odd positive integer (the short convolution is centred), e.g. 1, 3 or 5",
        )
        check(self.kernel_normalization in KERNEL_NORMALIZATIONS, "kernel_normalization", f"one of {KERNEL_NORMALIZATIONS}")
        if self.fusion == "dyken" and self.use_dynamic_short_conv and self.short_kernel_size == 1:
            check(
                self.kernel_normalization != "softmax",
                "kernel_normalization",
                "'gated_softmax' or 'none' with short_kernel_size=1 (a softmax over one tap is always 1, which would "
                "cut the audio and video out of the model)",
            )
        check(
            self.dynamic_conv_implementation in DYNAMIC_CONV_IMPLEMENTATIONS,
            "dynamic_conv_implementation",
            f"one of {DYNAMIC_CONV_IMPLEMENTATIONS}",
        )
        check(
            self.long_conv_implementation in LONG_CONV_IMPLEMENTATIONS,
            "long_conv_implementation",
            f"one of {LONG_CONV_IMPLEMENTATIONS}",
        )
        check(isinstance(self.hyena_order, int) and self.hyena_order >= 2, "hyena_order", "an integer >= 2")
        check(
            self.hyena_hidden_size is None
            or isinstance(self.hyena_hidden_size, int) and not isinstance(self.hyena_hidden_size, bool)
            and self.hyena_hidden_size > 0,
            "hyena_hidden_size",
            "None (the text encoder's width) or a positive integer",
        )
        check(
            isinstance(self.hyena_filter_embedding_dim, int)
            and self.hyena_filter_embedding_dim >= 3
            and self.hyena_filter_embedding_dim % 2 == 1,
            "hyena_filter_embedding_dim",
            "an odd integer >= 3 (time + sine/cosine pairs)",
        )
        for field in ("cross_attention_dropout", "kernel_dropout", "hyena_dropout", "mag_dropout", "nonverbal_dropout"):
            value = getattr(self, field)
            check(isinstance(value, (int, float)) and 0.0 <= value < 1.0, field, "a probability in [0, 1)")
        if self.classifier_dropout is not None:
            check(0.0 <= self.classifier_dropout < 1.0, "classifier_dropout", "None or a probability in [0, 1)")
        check(self.mag_beta_shift > 0, "mag_beta_shift", "a positive float")
        if self.fusion == "dyken":
            check(
                self.hyena_channels % self.kernel_heads == 0,
                "kernel_heads",
                f"a divisor of the Hyena channels ({self.hyena_channels} = "
                f"{'(hyena_order + 1) * ' if self.use_gating else ''}hidden_size)",
            )
            check(
                self.max_text_length <= self.text_config.max_position_embeddings,
                "max_text_length",
                f"at most the text encoder's max_position_embeddings ({self.text_config.max_position_embeddings})",
            )


__all__ = ["DyKenConfig"]
