"""Tiny DyKen-Hyena models and batches shared by the model tests (a helper module, not a test module)."""

import torch

from configuration_dyken import DyKenConfig
from modeling_dyken import DyKenForSequenceClassification

TINY_BERT = dict(hidden_size=48, num_attention_heads=4, intermediate_size=96, num_hidden_layers=2, vocab_size=120)
AUDIO_DIM, VIDEO_DIM = 768, 256


def tiny_config(**overrides):
    settings = dict(
        text_config=TINY_BERT, num_labels=5, max_text_length=16, max_audio_length=40, max_video_length=24,
        kernel_heads=4, cross_attention_hidden_size=32, cross_attention_heads=4, kernel_generator_hidden_size=32,
    )
    settings.update(overrides)
    return DyKenConfig(**settings)


def make_batch(batch_size=3, text_length=12, audio_frames=40, video_frames=24, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return dict(
        input_ids=torch.randint(1, 120, (batch_size, text_length), generator=generator),
        attention_mask=torch.ones(batch_size, text_length, dtype=torch.long),
        audio_features=torch.randn(batch_size, audio_frames, AUDIO_DIM, generator=generator),
        audio_attention_mask=torch.ones(batch_size, audio_frames, dtype=torch.long),
        video_features=torch.randn(batch_size, video_frames, VIDEO_DIM, generator=generator),
        video_attention_mask=torch.ones(batch_size, video_frames, dtype=torch.long),
    )


def build(seed=0, **overrides):
    torch.manual_seed(seed)
    return DyKenForSequenceClassification(tiny_config(**overrides)).eval()


def after_one_step(model, batch, labels):
    """The model after one Adam step on the batch (every weight moves by about the learning rate): DyKen's
    modulation starts at exactly zero (its output projection does), so only from here on does every part of the
    fusion take part."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(**batch, labels=labels).loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return model
