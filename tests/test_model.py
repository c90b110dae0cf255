"""DyKen-Hyena model: configuration, padding invariance, kernels, convolutions, gradients, errors, loading."""

import math
import re
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification

import modeling_dyken
from configuration_dyken import DyKenConfig
from modeling_dyken import (
    DyKenForSequenceClassification,
    ImplicitLongFilter,
    direct_long_conv,
    dynamic_conv_band,
    dynamic_conv_unfold,
    fft_long_conv,
    resolve_text_model_path,
)
from tiny_dyken import AUDIO_DIM, TINY_BERT, VIDEO_DIM, after_one_step, build, make_batch, tiny_config

# ----------------------------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("fusion", "late", "one of ('dyken', 'mag', 'text')"),
        ("alignment", "dtw", "one of ('ctc', 'avg_pool', 'conv1d', 'none')"),
        ("short_kernel_size", 4, "odd positive integer"),
        ("kernel_normalization", "l2", "one of ('softmax', 'gated_softmax', 'none')"),
        ("cross_attention_heads", 5, "divisor of cross_attention_hidden_size"),
        ("kernel_heads", 7, "divisor of the Hyena channels"),
        ("hyena_order", 1, "integer >= 2"),
        ("hyena_hidden_size", 0, "None (the text encoder's width) or a positive integer"),
        ("hyena_dropout", 1.5, "probability"),
        ("audio_feature_dim", 0, "positive integer"),
    ],
)
def test_invalid_config_is_rejected_with_what_is_allowed(field, value, expected):
    with pytest.raises(ValueError, match=rf"DyKenConfig\.{field}=.*{re.escape(expected)}"):
        tiny_config(**{field: value})


def test_mag_needs_an_alignment():
    with pytest.raises(ValueError, match="alignment='none' is invalid with fusion='mag'"):
        tiny_config(fusion="mag", alignment="none")


def test_alignment_defaults_to_none_for_dyken_and_ctc_for_mag_and_is_kept_when_given():
    assert tiny_config().alignment == "none"
    assert tiny_config(fusion="mag").alignment == "ctc"
    assert tiny_config(alignment="avg_pool").alignment == "avg_pool"
    assert tiny_config(fusion="mag", alignment="conv1d").alignment == "conv1d"


def test_config_round_trips_through_json(tmp_path):
    config = tiny_config(short_kernel_size=5, alignment="none", use_long_conv=False, id2label={i: f"c{i}" for i in range(5)})
    config.save_pretrained(tmp_path)
    loaded = DyKenConfig.from_pretrained(tmp_path)
    assert loaded.text_config.hidden_size == 48 and loaded.short_kernel_size == 5
    assert loaded.alignment == "none" and loaded.use_long_conv is False and loaded.id2label[3] == "c3"


# ----------------------------------------------------------------------------------------------- padding


@pytest.mark.parametrize(
    "overrides",
    [
        dict(fusion="dyken", alignment="ctc"),
        dict(fusion="dyken", alignment="none"),
        dict(fusion="dyken", alignment="avg_pool", dynamic_conv_implementation="band"),
        dict(fusion="dyken", alignment="conv1d", long_conv_implementation="direct", hyena_order=3),
        dict(fusion="dyken", alignment="none", hyena_bidirectional=False, short_kernel_size=5),
        dict(fusion="dyken", alignment="none", cross_attention_tied_key_value=False),
        dict(fusion="dyken", alignment="none", hyena_hidden_size=16, hyena_order=3),
        dict(fusion="dyken", use_dynamic_short_conv=False),
        dict(fusion="dyken", alignment="ctc", normalize_nonverbal_features=True),
        dict(fusion="mag", alignment="ctc"),
        dict(fusion="mag", alignment="avg_pool"),
        dict(fusion="text"),
    ],
)
def test_logits_do_not_depend_on_padding(overrides):
    model = build(**overrides)
    batch = make_batch(batch_size=3, text_length=14, audio_frames=40, video_frames=24)
    # Utterance 0 is short in every modality; the others make the batch longer.
    batch["attention_mask"][0, 9:] = 0
    batch["audio_attention_mask"][0, 25:] = 0
    batch["video_attention_mask"][0, 11:] = 0
    # Garbage in the padding must not matter either.
    batch["input_ids"][0, 9:] = 7
    with torch.no_grad():
        batched = model(**batch).logits[0]
        alone = model(
            input_ids=batch["input_ids"][:1, :9],
            audio_features=batch["audio_features"][:1, :25],
            video_features=batch["video_features"][:1, :11],
        ).logits[0]
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


def test_missing_modality_equals_fully_masked_modality():
    model = build(alignment="none")
    batch = make_batch(batch_size=2)
    with torch.no_grad():
        without_audio = model(**{k: v for k, v in batch.items() if not k.startswith("audio")}).logits
        batch["audio_attention_mask"][:] = 0
        masked_audio = model(**batch).logits
        text_only = model(input_ids=batch["input_ids"]).logits
    torch.testing.assert_close(without_audio, masked_audio, atol=1e-5, rtol=0)
    assert torch.isfinite(text_only).all()


def test_audio_frame_pooling_reads_the_mean_of_each_run_of_real_frames_and_nothing_else():
    frames = torch.arange(10.0).view(1, 5, 2)  # (B, T, D): frame t holds [2t, 2t + 1]
    mask = torch.tensor([[True, True, True, False, False]])
    pooled, pooled_mask = modeling_dyken.average_pool_frames(frames, mask, 2)
    # [frames 0-1], [frame 2; frame 3 is padding], [frame 4 is padding, then nothing]
    torch.testing.assert_close(pooled[0, :2], torch.tensor([[1.0, 2.0], [4.0, 5.0]]))
    assert pooled_mask.tolist() == [[True, True, False]]

    # The model with pooling gives what the model without it gives on the pooled frames.
    batch = make_batch(batch_size=2)
    batch["audio_attention_mask"][1, 33:] = 0
    pooling, reading_every_frame = build(audio_frame_pooling=2), build(audio_frame_pooling=1)
    audio, audio_mask = modeling_dyken.average_pool_frames(
        batch["audio_features"], batch["audio_attention_mask"].bool(), 2
    )
    with torch.no_grad():
        torch.testing.assert_close(
            pooling(**batch).logits,
            reading_every_frame(**dict(batch, audio_features=audio, audio_attention_mask=audio_mask)).logits,
        )
        assert not torch.allclose(pooling(**batch).logits, reading_every_frame(**batch).logits, atol=1e-7)


@pytest.mark.parametrize("context_layer_norm", [False, True])
def test_the_context_keeps_the_size_of_the_evidence_unless_layer_normed(context_layer_norm):
    """Frames that agree (a cue) give a token a large context; as many unrelated frames of the same size average out,
    so uninformative audio barely moves the kernels. A LayerNorm on the context rescales both to the same size."""
    context = build(context_layer_norm=context_layer_norm).dyken.fusion.context
    generator = torch.Generator().manual_seed(0)
    text = torch.randn(1, 8, TINY_BERT["hidden_size"], generator=generator)
    text_mask = torch.ones(1, 8, dtype=torch.bool)
    no_video, no_video_mask = torch.zeros(1, 1, VIDEO_DIM), torch.zeros(1, 1, dtype=torch.bool)
    unrelated = torch.randn(1, 200, AUDIO_DIM, generator=generator)  # (B, T, D), each frame of norm ~ sqrt(D)
    agreeing = unrelated[:, :1].expand(-1, 200, -1)  # the same frame 200 times
    audio_mask = torch.ones(1, 200, dtype=torch.bool)

    def size(audio):  # mean norm of the tokens' contexts
        with torch.no_grad():
            contexts = context(text, text_mask, audio, audio_mask, audio_mask, no_video, no_video_mask, no_video_mask)
        return contexts.norm(dim=-1).mean()

    ratio = size(unrelated) / size(agreeing)
    if context_layer_norm:
        assert 0.9 < ratio < 1.1
    else:
        assert ratio < 0.25  # ~ 1 / sqrt(200) with the near-uniform attention of an untrained model


@pytest.mark.parametrize("fusion", ["dyken", "mag"])
def test_nonverbal_dropout_withholds_whole_utterances_audio_and_video_in_training_only(fusion):
    no_dropout = dict(cross_attention_dropout=0.0, hyena_dropout=0.0, mag_dropout=0.0, classifier_dropout=0.0,
                      text_config=dict(TINY_BERT, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    batch = make_batch(batch_size=6)
    reference = build(fusion=fusion, **no_dropout)
    model = build(fusion=fusion, nonverbal_dropout=0.5, **no_dropout)
    model.load_state_dict(reference.state_dict())
    with torch.no_grad():
        with_features = reference(**batch).logits
        without_features = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        torch.testing.assert_close(model(**batch).logits, with_features)  # eval: nothing is withheld
        model.train()
        torch.manual_seed(0)
        trained_view = model(**batch).logits
    # Each row is either the row with its features or the row without any: both kinds occur at p = 0.5.
    withheld = [torch.allclose(trained_view[i], without_features[i], atol=1e-5) for i in range(6)]
    kept = [torch.allclose(trained_view[i], with_features[i], atol=1e-5) for i in range(6)]
    assert all(w != k for w, k in zip(withheld, kept)) and any(withheld) and any(kept)


def test_utterance_mean_normalisation_removes_a_per_clip_offset_and_nothing_else():
    model = build(alignment="none", normalize_nonverbal_features=True)
    batch = make_batch(batch_size=2)
    batch["audio_attention_mask"][1, 30:] = 0
    shifted = dict(
        batch,
        audio_features=batch["audio_features"] + 3 * torch.randn(2, 1, AUDIO_DIM),
        video_features=batch["video_features"] + 3 * torch.randn(2, 1, VIDEO_DIM),
    )
    with torch.no_grad():
        torch.testing.assert_close(model(**shifted).logits, model(**batch).logits, atol=1e-5, rtol=0)
    before = kernels_of(model, batch)
    batch["audio_features"][:, 5] += 3.0  # a change within the clip still counts
    assert (kernels_of(model, batch) - before).abs().max() > 1e-4


# ----------------------------------------------------------------------------------------------- kernels


def kernels_of(model, batch):
    with torch.no_grad():
        return model(**batch, output_dynamic_kernels=True).dynamic_kernels


@pytest.mark.parametrize("alignment", ["ctc", "none"])
def test_kernels_differ_across_tokens_and_follow_audio_and_video(alignment):
    model = build(alignment=alignment)
    batch = make_batch(batch_size=2)
    kernels = kernels_of(model, batch)
    assert kernels.shape == (2, 12, 4, 3)
    torch.testing.assert_close(kernels.sum(-1), torch.ones(2, 12, 4))  # softmax over the taps
    gated = kernels_of(build(alignment=alignment, kernel_normalization="gated_softmax"), batch)
    # A softmax over the taps and an "off" logit: positive taps that sum to less than 1, by a per-token amount.
    assert (gated > 0).all() and (gated.sum(-1) < 1).all() and gated.sum(-1).std() > 1e-3
    assert (kernels[:, 1:] - kernels[:, :-1]).abs().amax() > 1e-3  # a kernel per token, not one per utterance

    other_audio = dict(batch, audio_features=torch.randn_like(batch["audio_features"]))
    other_video = dict(batch, video_features=torch.randn_like(batch["video_features"]))
    assert (kernels_of(model, other_audio) - kernels).abs().amax() > 1e-4
    assert (kernels_of(model, other_video) - kernels).abs().amax() > 1e-4


def test_static_short_conv_ignores_the_nonverbal_input():
    model = build(use_dynamic_short_conv=False)
    batch = make_batch(batch_size=2)
    kernels = kernels_of(model, batch)
    assert kernels.shape == (2, 12, model.config.hyena_channels, 3)
    changed = dict(
        batch,
        audio_features=torch.randn_like(batch["audio_features"]),
        video_features=torch.randn_like(batch["video_features"]),
    )
    torch.testing.assert_close(kernels_of(model, changed), kernels, atol=0, rtol=0)


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_static_short_conv_is_the_dynamic_convolution_with_the_same_kernel_at_every_token(kernel_size):
    """The static ablation runs as a grouped conv1d; it must compute what the band-matrix dynamic convolution
    computes when every real token carries the static kernels (same centring, same tap order, padding silent)."""
    hyena = build(use_dynamic_short_conv=False, short_kernel_size=kernel_size).dyken.fusion.hyena
    embeddings = torch.randn(2, 9, 48)
    text_mask = torch.ones(2, 9, dtype=torch.bool)
    text_mask[1, 6:] = False
    per_token = hyena.static_kernels(2, 9) * text_mask[..., None, None]  # (B, L, C, Ks), zero at padding
    with torch.no_grad():
        torch.testing.assert_close(hyena(embeddings, text_mask), hyena(embeddings, text_mask, per_token))


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_kernel_sizes_of_the_paper_work(kernel_size):
    model = build(short_kernel_size=kernel_size, kernel_normalization="none")
    kernels = kernels_of(model, make_batch(batch_size=2))
    assert kernels.shape[-1] == kernel_size and torch.isfinite(kernels).all()


# ----------------------------------------------------------------------------------------------- convolutions


def reference_dynamic_conv(x, kernels):
    """Loop over positions and taps: y[b, t, c] = sum_k w[b, t, head(c), k] x[b, t + k - Ks//2, c]."""
    batch_size, length, channels = x.shape
    num_heads, kernel_size = kernels.shape[-2:]
    head_of_channel = torch.arange(channels) // (channels // num_heads)
    out = torch.zeros_like(x)
    for t in range(length):
        for k in range(kernel_size):
            source = t + k - kernel_size // 2
            if 0 <= source < length:
                out[:, t] += kernels[:, t, head_of_channel, k] * x[:, source]
    return out


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_dynamic_convolutions_match_a_loop(kernel_size):
    x = torch.randn(2, 9, 12, dtype=torch.float64)
    kernels = torch.randn(2, 9, 3, kernel_size, dtype=torch.float64)
    expected = reference_dynamic_conv(x, kernels)
    torch.testing.assert_close(dynamic_conv_unfold(x, kernels), expected)
    torch.testing.assert_close(dynamic_conv_band(x, kernels), expected)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_fft_long_convolution_equals_direct_convolution(bidirectional):
    length, channels = 11, 6
    long_filter = ImplicitLongFilter(channels, max_length=16, embedding_dim=5, order=8, frequency=1.0, bidirectional=bidirectional)
    circular = long_filter(length, torch.device("cpu")).double()  # (2L, C)
    forward_taps = circular[:length]
    backward_taps = torch.cat([torch.zeros(1, channels, dtype=torch.float64), circular[length + 1 :].flip(0)])
    if not bidirectional:
        assert backward_taps.abs().max() == 0
    u = torch.randn(3, length, channels, dtype=torch.float64)
    expected = torch.zeros_like(u)  # y[t] = sum_{s<=t} h_fwd[t - s] u[s] + sum_{s>t} h_bwd[s - t] u[s]
    for t in range(length):
        for s in range(length):
            expected[:, t] += (forward_taps[t - s] if s <= t else backward_taps[s - t]) * u[:, s]
    torch.testing.assert_close(fft_long_conv(u, circular), expected)
    torch.testing.assert_close(direct_long_conv(u, circular), expected)


def test_long_filter_decays_and_does_not_depend_on_sequence_length():
    long_filter = ImplicitLongFilter(4, max_length=32, embedding_dim=3, order=16, frequency=1.0, bidirectional=True)
    short, long = long_filter(8, torch.device("cpu")), long_filter(20, torch.device("cpu"))
    torch.testing.assert_close(short[:8], long[:8])  # the same positive offsets give the same taps
    torch.testing.assert_close(short[-7:], long[-7:])  # and the same negative offsets


# ----------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize(
    "overrides",
    [
        dict(alignment="ctc"), dict(alignment="none"), dict(alignment="conv1d", fusion="mag"),
        dict(use_dynamic_short_conv=False), dict(cross_attention_tied_key_value=False),
        dict(short_kernel_size=1, kernel_normalization="gated_softmax"), dict(short_kernel_size=1, kernel_normalization="none"),
        dict(zero_init_modulation=True),
        dict(short_kernel_size=5, kernel_normalization="none"),
        dict(hyena_hidden_size=16), dict(hyena_hidden_size=16, use_gating=False),
    ],
)
def test_every_trainable_parameter_receives_a_gradient(overrides):
    batch = make_batch(batch_size=4)
    batch["attention_mask"][1, 8:] = 0
    batch["audio_attention_mask"][2, 20:] = 0
    labels = torch.tensor([0, 1, 2, 3])
    model = after_one_step(build(**overrides), batch, labels)
    model(**batch, labels=labels).loss.backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing, f"no gradient reaches {missing}"


def test_the_fusion_reads_the_embeddings_without_sending_them_a_gradient():
    # The embeddings' gradient is the encoder input's, exactly: none comes back through the modulation or the
    # cross-modal attention, while the fusion's own weights still learn.
    batch = make_batch(batch_size=4)
    labels = torch.tensor([0, 1, 2, 3])
    model = after_one_step(build(), batch, labels)
    captured = {}

    def keep_gradient(name, tensor):
        tensor.register_hook(lambda grad: captured.__setitem__(name, grad))

    model.dyken.text_model.embeddings.register_forward_hook(lambda module, args, output: keep_gradient("embeddings", output))
    model.dyken.text_model.encoder.register_forward_pre_hook(lambda module, args: keep_gradient("encoder_input", args[0]))
    model(**batch, labels=labels).loss.backward()
    assert captured["encoder_input"].abs().sum() > 0
    torch.testing.assert_close(captured["embeddings"], captured["encoder_input"], rtol=0, atol=0)
    assert model.dyken.fusion.hyena.in_proj.weight.grad.abs().sum() > 0


def test_a_checkpoint_with_the_earlier_hyena_input_scale_is_refused_by_name(tmp_path):
    from safetensors.torch import load_file, save_file

    build().save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    weights["dyken.fusion.hyena.input_norm.weight"] = torch.ones(TINY_BERT["hidden_size"])
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"dyken\.fusion\.hyena\.input_norm\.weight.*earlier version"):
        DyKenForSequenceClassification.from_pretrained(tmp_path)


@pytest.mark.parametrize("normalization", ["softmax", "gated_softmax", "none"])
@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_audio_and_video_change_the_logits_at_every_kernel_size(kernel_size, normalization):
    # The paper's Ks = 1 / 3 / 5 comparison must compare models that read audio and video: a one-tap softmax kernel
    # that is always 1 would leave "text + static Hyena" at Ks = 1, so that combination is refused.
    if (kernel_size, normalization) == (1, "softmax"):
        with pytest.raises(ValueError, match="'gated_softmax' or 'none' with short_kernel_size=1"):
            tiny_config(short_kernel_size=1, kernel_normalization="softmax")
        return
    batch = make_batch(batch_size=4)
    model = after_one_step(build(short_kernel_size=kernel_size, kernel_normalization=normalization), batch,
                           torch.tensor([0, 1, 2, 3])).eval()
    with torch.no_grad():
        logits = model(**batch).logits
        for modality in ("audio", "video"):
            other = dict(batch, **{f"{modality}_features": torch.randn_like(batch[f"{modality}_features"])})
            # A modality without a path into the model changes the logits by exactly 0, not by float noise.
            assert (model(**other).logits - logits).abs().max() > 1e-6, modality


def test_bf16_autocast_runs_on_cpu():
    model = build().train()
    batch = make_batch(batch_size=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(**batch, labels=torch.tensor([1, 2]))
    output.loss.backward()
    assert torch.isfinite(output.logits.float()).all() and torch.isfinite(output.loss)
    assert model.classifier.weight.grad is not None


def test_a_few_steps_fit_a_batch():
    model = build().train()
    batch = make_batch(batch_size=4)
    labels = torch.tensor([0, 1, 2, 3])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model(**batch, labels=labels).loss
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.3 * losses[0]


# ----------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda b: b.update(audio_features=torch.randn(3, 40, 512)), r"audio_features: expected shape \(batch=3, frames, 768\).*got \(3, 40, 512\)"),
        (lambda b: b.update(video_features=torch.randn(2, 24, 256)), r"video_features: expected shape \(batch=3, frames, 256\)"),
        (lambda b: b.update(video_features=torch.randn(3, 256)), r"video_features: expected shape"),
        (lambda b: b.update(audio_attention_mask=torch.ones(3, 39)), r"audio_attention_mask: expected shape \(3, 40\)"),
        (lambda b: b.update(attention_mask=torch.ones(3, 11)), r"attention_mask: expected shape \(3, 12\)"),
        (lambda b: b.update(token_type_ids=torch.zeros(2, 12, dtype=torch.long)), r"token_type_ids: expected shape"),
        (lambda b: b["audio_features"].__setitem__((1, 3, 5), float("nan")), r"audio_features: NaN or inf values in batch rows \[1\]"),
        (lambda b: b["video_features"].__setitem__((2, 0, 0), float("inf")), r"video_features: NaN or inf values in batch rows \[2\]"),
        (lambda b: b["audio_attention_mask"].__setitem__((0, 0), 0), r"audio_attention_mask: valid frames must come first"),
        (lambda b: b.update(input_ids=torch.randint(1, 100, (3, 20)), attention_mask=None), r"exceeds config.max_text_length=16"),
        (lambda b: b.pop("audio_features"), r"audio_attention_mask was given without audio_features"),
    ],
)
def test_bad_input_gets_a_clear_error(change, message):
    model = build()
    batch = make_batch()
    change(batch)
    with pytest.raises(ValueError, match=message):
        model(**batch)


def test_bad_labels_get_a_clear_error():
    with pytest.raises(ValueError, match=r"labels: expected class ids in \[0, 5\)"):
        build()(**make_batch(), labels=torch.tensor([0, 5, 1]))


# ----------------------------------------------------------------------------------------------- loading


def test_from_text_pretrained_carries_the_packaged_minilm_weights():
    path = resolve_text_model_path("all-MiniLM-L6-v2")
    model = DyKenForSequenceClassification.from_text_pretrained("all-MiniLM-L6-v2", fusion="text", num_labels=3).eval()
    reference = AutoModel.from_pretrained(path).eval()
    assert model.config.text_config.hidden_size == 384 and model.config.text_config.num_hidden_layers == 6
    input_ids = torch.tensor([[101, 7592, 2088, 999, 102]])
    with torch.no_grad():
        ours = model.dyken(input_ids).pooler_output
        theirs = reference(input_ids).pooler_output
    torch.testing.assert_close(ours, theirs)


def test_with_zero_init_modulation_a_new_dyken_model_starts_as_the_text_model():
    # The fusion is a pre-norm residual e + Hyena(LayerNorm(e)); with zero_init_modulation its output projection
    # starts at zero, and a new DyKen-Hyena gives exactly the text-only model's hidden states.
    dyken, text = build(seed=3, zero_init_modulation=True), build(seed=3, fusion="text")
    text.dyken.text_model.load_state_dict(dyken.dyken.text_model.state_dict())
    batch = make_batch()
    batch["attention_mask"][0, 8:] = 0
    with torch.no_grad():
        reference = text.dyken(**batch).last_hidden_state
        torch.testing.assert_close(dyken.dyken(**batch).last_hidden_state, reference, atol=0, rtol=0)
        torch.nn.init.normal_(dyken.dyken.fusion.hyena.out_proj.weight, std=0.1)
        assert (dyken.dyken(**batch).last_hidden_state - reference).abs().max() > 1e-3  # the modulation, once on
    default = build(seed=3)  # nn.Linear's default, as safari's operator
    assert default.dyken.fusion.hyena.out_proj.weight.abs().max() > 0


def test_from_text_pretrained_applies_and_checks_text_config_overrides():
    model = DyKenForSequenceClassification.from_text_pretrained(
        "all-MiniLM-L6-v2", text_config_overrides={"hidden_dropout_prob": 0.0}, fusion="text", num_labels=3
    )
    assert model.config.text_config.hidden_dropout_prob == 0.0 and model.dropout.p == 0.0
    with pytest.raises(ValueError, match="has no field 'hiden_dropout_prob'"):
        DyKenForSequenceClassification.from_text_pretrained(
            "all-MiniLM-L6-v2", text_config_overrides={"hiden_dropout_prob": 0.0}, fusion="text", num_labels=3
        )


def save_tiny_checkpoint(directory):
    model = build(alignment="none")
    model.save_pretrained(directory)
    batch = make_batch(batch_size=2)
    batch["attention_mask"][1, 7:] = 0
    with torch.no_grad():
        logits = model(**batch).logits
    torch.save({"batch": batch, "logits": logits}, directory / "expected.pt")
    return model


def test_installed_package_registers_the_auto_classes(tmp_path):
    save_tiny_checkpoint(tmp_path)
    expected = torch.load(tmp_path / "expected.pt")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()  # no trust_remote_code
    assert type(model) is DyKenForSequenceClassification
    with torch.no_grad():
        torch.testing.assert_close(model(**expected["batch"]).logits, expected["logits"])


REMOTE_LOAD_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    class HideProject(importlib.abc.MetaPathFinder):  # as if dyken-hyena were not installed
        def find_spec(self, name, path=None, target=None):
            if name in ("modeling_dyken", "configuration_dyken"):
                raise ModuleNotFoundError(name)

    sys.meta_path.insert(0, HideProject())
    try:
        import modeling_dyken
        raise SystemExit("the project is importable; the test would prove nothing")
    except ModuleNotFoundError:
        pass

    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    checkpoint = sys.argv[1]
    expected = torch.load(checkpoint + "/expected.pt")
    classifier = AutoModelForSequenceClassification.from_pretrained(checkpoint, trust_remote_code=True).eval()
    base = AutoModel.from_pretrained(checkpoint, trust_remote_code=True).eval()
    assert type(classifier).__module__.startswith("transformers_modules"), type(classifier).__module__
    with torch.no_grad():
        torch.testing.assert_close(classifier(**expected["batch"]).logits, expected["logits"])
        pooled = base(**expected["batch"]).pooler_output
    torch.testing.assert_close(pooled, classifier.dyken(**expected["batch"]).pooler_output)
    print("REMOTE-CODE-OK", type(classifier).__name__, type(base).__name__)
    """
)


def test_checkpoint_loads_as_remote_code_in_a_fresh_process_without_the_package(tmp_path):
    checkpoint = tmp_path / "checkpoint"
    save_tiny_checkpoint(checkpoint)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), PYTHONPATH="")
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_LOAD_SCRIPT, str(checkpoint)],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REMOTE-CODE-OK DyKenForSequenceClassification DyKenModel" in result.stdout


# ----------------------------------------------------------------------------------------------- token-level reading


def test_locality_bias_is_the_gaussian_distance_penalty_on_each_heads_logits():
    """With cross_attention_locality, head h's attention is softmax(q.k / sqrt(d) - s_h (p_token - p_frame)^2) over
    the "no signal" slot (no penalty) and the real frames: checked against that formula written out."""
    model = build(cross_attention_locality=[2.0, 2000.0])
    attention = model.dyken.fusion.context.audio_attention
    batch_size, length, frames, width = 2, 7, 23, model.config.cross_attention_hidden_size
    text, features = torch.randn(batch_size, length, 48), torch.randn(batch_size, frames, AUDIO_DIM)
    text_mask = torch.ones(batch_size, length, dtype=torch.bool)
    frame_mask = torch.ones(batch_size, frames, dtype=torch.bool)
    frame_mask[1, 15:] = False
    text_place, frame_place = modeling_dyken.relative_place(text_mask), modeling_dyken.relative_place(frame_mask)
    text_position = modeling_dyken.relative_position_encoding(text_place, width)
    frame_position = modeling_dyken.relative_position_encoding(frame_place, width)
    with torch.no_grad():
        got = attention(text, text_position, text_place, features, frame_mask, frame_position, frame_place)
        heads, head_dim = attention.num_heads, width // attention.num_heads
        split = lambda x: x.view(batch_size, x.shape[1], heads, head_dim).transpose(1, 2)  # noqa: E731
        projected = attention.key(features)
        keys = torch.cat([attention.null_key.expand(batch_size, 1, -1), projected + frame_position], dim=1)
        values = torch.cat([attention.null_value.expand(batch_size, 1, -1), projected], dim=1)
        logits = split(attention.query(text) + text_position) @ split(keys).transpose(-1, -2) / math.sqrt(head_dim)
        distance = text_place[:, None, :, None] - frame_place[:, None, None, :]  # (B, 1, L, T)
        penalty = attention.log_sharpness.exp()[None, :, None, None] * distance**2  # (B, heads, L, T)
        logits[..., 1:] -= penalty
        logits[..., 1:] = logits[..., 1:].masked_fill(~frame_mask[:, None, None, :], float("-inf"))
        expected = (logits.softmax(-1) @ split(values)).transpose(1, 2).reshape(batch_size, length, width)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert build().dyken.fusion.context.audio_attention.log_sharpness is None  # off by default


def test_with_locality_a_sharp_head_reads_the_frames_under_its_token():
    model = build(cross_attention_locality=[2000.0, 2000.0])
    attention = model.dyken.fusion.context.video_attention
    text_mask, frame_mask = torch.ones(1, 11, dtype=torch.bool), torch.ones(1, 101, dtype=torch.bool)
    text_place, frame_place = modeling_dyken.relative_place(text_mask), modeling_dyken.relative_place(frame_mask)
    query, key = attention.locality_dimensions(text_place, frame_place)
    bias = (query @ key.transpose(-1, -2))[..., 1:] - (query @ key.transpose(-1, -2))[..., :1]  # relative to the slot
    nearest = bias.argmax(-1)[0, 0]  # (L,): the frame each token's head favours
    torch.testing.assert_close(nearest, torch.arange(0, 101, 10))  # token i of 11 sits at frame 10 i of 101
