"""Real clips and tiny random-weight extractors shared by the clip tests (a helper module, not a test module).

The clips are real MP4 files (H.264 video with a bright rectangle moving across the frame, AAC audio) written by PyAV;
the models are the real architectures with random weights built from configs (nothing is downloaded), at tiny sizes.
"""

from pathlib import Path

import numpy as np
import pytest
import torch


def _clip_libraries_available() -> bool:
    try:
        import av  # noqa: F401
        import torchvision.ops  # noqa: F401
    except (ImportError, RuntimeError, OSError):  # RuntimeError: a torchvision built for another torch
        return False
    return True


HAVE_CLIP_LIBRARIES = _clip_libraries_available()


requires_clip_libraries = pytest.mark.skipif(
    not HAVE_CLIP_LIBRARIES, reason='needs PyAV and torchvision: pip install -e ".[clips]"'
)


FRAME_SIZE = (64, 48)  # width, height: even sizes for H.264's 4:2:0 chroma


RECTANGLE = (16, 24)  # width, height of the moving rectangle


RECTANGLE_TOP = 12


def rectangle_box(frame_index: int, num_frames: int, width: int = FRAME_SIZE[0]) -> list:
    """[x1, y1, x2, y2] of the moving rectangle in a frame: it crosses the frame from left to right."""
    left = round(frame_index * (width - RECTANGLE[0]) / max(num_frames - 1, 1))
    return [left, RECTANGLE_TOP, left + RECTANGLE[0], RECTANGLE_TOP + RECTANGLE[1]]


def make_clip(path, seconds=2.0, fps=10, audio=True, video=True, sample_rate=16000, channels=1, seed=0,
              audio_codec="aac", audio_samples=None):  # fmt: skip
    """Write a clip with PyAV: a white rectangle moving across a dark frame, and a tone in noise.

    `audio_samples` overrides the audio length (e.g. a few samples, with `audio_codec="pcm_s16le"` in a .mov: AAC
    pads every clip to 1,024-sample frames)."""
    import av

    width, height = FRAME_SIZE
    rng = np.random.default_rng(seed)
    num_frames = round(seconds * fps)
    with av.open(str(path), "w") as container:
        if video:
            video_stream = container.add_stream("libx264", rate=fps)
            video_stream.width, video_stream.height, video_stream.pix_fmt = width, height, "yuv420p"
        if audio:
            audio_stream = container.add_stream(audio_codec, rate=sample_rate)
            audio_stream.layout = "mono" if channels == 1 else "stereo"
        if video:
            for index in range(num_frames):
                image = np.full((height, width, 3), 20 + seed * 10, dtype=np.uint8)
                x1, y1, x2, y2 = rectangle_box(index, num_frames)
                image[y1:y2, x1:x2] = 255
                for packet in video_stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in video_stream.encode():
                container.mux(packet)
        if audio:
            total = audio_samples if audio_samples is not None else round(seconds * sample_rate)
            time = np.arange(total) / sample_rate
            signal = 0.3 * np.sin(2 * np.pi * (180 + 40 * seed) * time) + 0.05 * rng.standard_normal(total)
            samples = np.repeat(signal[None].astype(np.float32), channels, axis=0)
            layout = "mono" if channels == 1 else "stereo"
            frame_format = "fltp" if audio_codec == "aac" else "s16p"
            if frame_format == "s16p":
                samples = (samples * 32767).astype(np.int16)
            chunk = 1024
            for start in range(0, total, chunk):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start : start + chunk]),
                                                   format=frame_format, layout=layout)  # fmt: skip
                frame.sample_rate, frame.pts = sample_rate, start
                for packet in audio_stream.encode(frame):
                    container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)
    return Path(path)


def tiny_wav2vec2(seed=0, attention_mask=False):
    """A one-layer wav2vec 2.0 with the base model's convolution kernels and strides (one frame per 320 samples),
    narrow convolutions and 768-d hidden states; its feature extractor as facebook/wav2vec2-base-960h's."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(seed)
    config = Wav2Vec2Config(
        hidden_size=768, num_hidden_layers=1, num_attention_heads=12, intermediate_size=256, conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16, feat_extract_norm="layer" if attention_mask else "group",
        do_stable_layer_norm=attention_mask,
    )  # fmt: skip
    feature_extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=attention_mask
    )
    return Wav2Vec2Model(config).eval(), feature_extractor


def tiny_detector(seed=0):
    """torchvision's Faster R-CNN ResNet-50-FPN, random weights, run at the frames' own 64x48 size with 20 proposals."""
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    torch.manual_seed(seed)
    return fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=48, max_size=64,
                                   rpn_pre_nms_top_n_test=20, rpn_post_nms_top_n_test=20)  # fmt: skip


def tiny_asr_folder(folder: Path) -> Path:
    """A random-weight CTC model whose output favours the letter "a": a tiny, deterministic ASR pipeline."""
    import json

    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2ForCTC, Wav2Vec2Processor

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "a": 5, "b": 6}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), word_delimiter_token="|")
    model, feature_extractor = tiny_wav2vec2()
    torch.manual_seed(0)
    from transformers import Wav2Vec2Config

    config = Wav2Vec2Config(**{**model.config.to_dict(), "vocab_size": len(vocab), "pad_token_id": 0})
    asr = Wav2Vec2ForCTC(config).eval()
    with torch.no_grad():
        asr.lm_head.weight.zero_()
        asr.lm_head.bias.zero_()
        asr.lm_head.bias[vocab["a"]] = 10.0
    asr.save_pretrained(folder)
    Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny inputs: a second thread only adds synchronisation (and the machine may be shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
