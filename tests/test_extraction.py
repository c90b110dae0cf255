"""extraction_dyken: reading clips with PyAV, wav2vec 2.0 audio features, Faster R-CNN speaker RoI features.

The clips are real MP4 files (H.264 video with a bright rectangle moving across the frame, AAC audio) written by PyAV
in the tests; the models are the real architectures with random weights built from configs (nothing is downloaded),
at tiny sizes: a one-layer wav2vec 2.0 with the base model's convolution strides (so the same ~50 frames per second)
and 768-d hidden states, and torchvision's Faster R-CNN ResNet-50-FPN run on 64x48 frames with few proposals.

Tests that need PyAV and torchvision are skipped where they are not installed (`pip install -e ".[clips]"`); the
message that tells a user to install them is tested everywhere.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from clip_helpers import (  # noqa: E402
    RECTANGLE_TOP,
    HAVE_CLIP_LIBRARIES,
    make_clip,
    one_thread,  # noqa: F401 (an autouse fixture)
    rectangle_box,
    requires_clip_libraries,
    tiny_asr_folder,
    tiny_detector,
    tiny_wav2vec2,
)
from extraction_dyken import (  # noqa: E402
    AudioFeatureExtractor,
    Clip,
    ClipError,
    VideoFeatureExtractor,
    extract_audio_features,
    extract_video_features,
    probe_clip,
    read_clip,
    select_speaker_box,
    transcribe,
)















@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    if not HAVE_CLIP_LIBRARIES:
        pytest.skip('needs PyAV and torchvision: pip install -e ".[clips]"')
    folder = tmp_path_factory.mktemp("clips")
    made = {
        "speech": make_clip(folder / "speech.mp4", seconds=2.0, fps=10, sample_rate=22050, channels=2),
        "video_only": make_clip(folder / "video_only.mp4", seconds=1.0, audio=False),
        "audio_only": make_clip(folder / "audio_only.mp4", seconds=1.0, video=False),
    }
    corrupt = folder / "corrupt.mp4"
    corrupt.write_bytes(made["speech"].read_bytes()[:1500])  # cut before the index: FFmpeg cannot open it
    made["corrupt"] = corrupt
    text = folder / "notes.mp4"
    text.write_text("not a video\n")
    made["text"] = text
    return made


@pytest.fixture(scope="module")
def audio_extractor():
    model, feature_extractor = tiny_wav2vec2()
    return AudioFeatureExtractor(model=model, feature_extractor=feature_extractor, device="cpu")


@pytest.fixture(scope="module")
def video_extractor(clips):
    return VideoFeatureExtractor(detector=tiny_detector(), device="cpu")


# ---------------------------------------------------------------------------------------------------------------
# Missing dependencies: a clear message, in every environment
# ---------------------------------------------------------------------------------------------------------------


def test_missing_pyav_or_torchvision_names_the_extra(monkeypatch, tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0")
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "dyken-hyena\[clips\]"'):
        read_clip(clip)
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(ImportError, match=r"dyken-hyena\[clips\].*torch"):
        VideoFeatureExtractor(weights=None)


def test_remote_code_loading_requires_only_torch_numpy_and_transformers():
    # A checkpoint folder may carry extraction_dyken.py as remote code: transformers then checks that every module it
    # imports outside `try` is installed. PyAV and torchvision must not be among them.
    from transformers.dynamic_module_utils import get_imports

    third_party = set(get_imports(REPO_ROOT / "extraction_dyken.py")) - sys.stdlib_module_names
    assert third_party == {"numpy", "torch", "transformers"}


def test_extract_command_without_pyav_says_what_to_install_and_writes_nothing(monkeypatch, tmp_path, capsys):
    from datasets_scripts.__main__ import main

    monkeypatch.setitem(sys.modules, "av", None)
    (tmp_path / "clips").mkdir()
    annotations = tmp_path / "train.tsv"
    annotations.write_text("season\tepisode\tclip\ttext\tlabel\nS01\tE01\t1\thi.\tGreet\n")
    out = tmp_path / "release"
    assert main(["extract", "--clips", str(tmp_path / "clips"), "--tsv", str(annotations), "--out", str(out)]) == 1
    assert 'pip install "dyken-hyena[clips]"' in capsys.readouterr().err
    assert not out.exists()


def test_select_speaker_box_follows_the_speaker():
    speaker, other = [10, 10, 30, 40], [40, 10, 60, 40]
    boxes, labels = np.array([other, speaker], np.float32), np.array([1, 1])
    # First frame: the most confident person.
    assert select_speaker_box(boxes, np.array([0.9, 0.8]), labels).tolist() == other
    # Later frames: the person overlapping the previous speaker, even when someone else scores higher.
    assert select_speaker_box(boxes, np.array([0.9, 0.8]), labels, previous_box=[11, 10, 31, 40]).tolist() == speaker
    # No overlap (a cut): the most confident person again.
    assert select_speaker_box(boxes, np.array([0.6, 0.7]), labels, previous_box=[0, 0, 5, 5]).tolist() == speaker
    # Not confident, or not a person: no speaker.
    assert select_speaker_box(boxes, np.array([0.4, 0.3]), labels) is None
    assert select_speaker_box(boxes, np.array([0.9, 0.9]), np.array([3, 62])) is None
    assert select_speaker_box(np.zeros((0, 4)), np.zeros(0), np.zeros(0)) is None


# ---------------------------------------------------------------------------------------------------------------
# Reading clips
# ---------------------------------------------------------------------------------------------------------------


@requires_clip_libraries
def test_read_clip_decodes_16khz_mono_audio_and_rgb_frames(clips):
    clip = read_clip(clips["speech"])
    assert isinstance(clip, Clip) and clip.path == str(clips["speech"])
    assert clip.sample_rate == 16000 and clip.waveform.dtype == np.float32 and clip.waveform.ndim == 1
    assert abs(clip.audio_seconds - 2.0) < 0.1  # 22.05 kHz stereo -> 16 kHz mono (the encoder adds some padding)
    assert 0.1 < clip.waveform.std() < 0.5  # the tone's amplitude, averaged over two identical channels
    assert clip.frames.shape == (20, 48, 64, 3) and clip.frames.dtype == np.uint8 and clip.fps == 10.0
    # The rectangle moves from left to right: the brightest column of the first and last frames.
    brightest = [int(frame[RECTANGLE_TOP + 5].max(axis=1).argmax()) for frame in (clip.frames[0], clip.frames[-1])]
    assert brightest[0] < 8 and brightest[1] > 64 - 24
    streams = probe_clip(clips["speech"])
    assert streams.has_audio and streams.has_video and abs(streams.duration - 2.0) < 0.2


@requires_clip_libraries
def test_read_clip_without_audio_or_without_video(clips):
    video_only = read_clip(clips["video_only"])
    assert video_only.waveform is None and not video_only.has_audio and video_only.frames.shape[0] == 10
    audio_only = read_clip(clips["audio_only"])
    assert audio_only.frames.shape == (0, 0, 0, 3) and not audio_only.has_video and audio_only.has_audio
    with pytest.raises(ValueError, match="video_only.mp4: the clip has no audio"):
        extract_audio_features(video_only, extractor=object())
    with pytest.raises(ValueError, match="audio_only.mp4: the clip has no video frames"):
        extract_video_features(audio_only, extractor=object())


@requires_clip_libraries
@pytest.mark.parametrize(
    "name, reason",
    [("corrupt", "not a readable media file"), ("text", "not a readable media file"), ("missing", "no such file")],
)
def test_unreadable_clip_raises_clip_error_naming_the_file(clips, tmp_path, name, reason):
    path = clips.get(name, tmp_path / "missing.mp4")
    for reader in (read_clip, probe_clip):
        with pytest.raises(ClipError, match=reason) as caught:
            reader(path)
        assert caught.value.path == str(path) and str(path) in str(caught.value)
        assert caught.value.reason.startswith(reason)
        assert isinstance(caught.value, ValueError)


# ---------------------------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------------------------


@requires_clip_libraries
def test_audio_features_are_768_wide_at_50_frames_per_second(clips, audio_extractor):
    clip = read_clip(clips["speech"])
    features = extract_audio_features(clip, extractor=audio_extractor)
    assert features.dtype == np.float32 and features.shape[1] == 768
    assert audio_extractor.frames_per_second == 50.0 and audio_extractor.minimum_samples == 400
    assert features.shape[0] == (clip.waveform.size - 400) // 320 + 1  # a 25 ms window every 20 ms
    assert abs(features.shape[0] / clip.audio_seconds - 50) < 1
    assert np.isfinite(features).all() and features.std() > 0


@requires_clip_libraries
@pytest.mark.parametrize("attention_mask", [False, True], ids=["base_without_mask", "with_attention_mask"])
def test_batching_never_changes_a_clips_features(attention_mask):
    model, feature_extractor = tiny_wav2vec2(attention_mask=attention_mask)
    extractor = AudioFeatureExtractor(model=model, feature_extractor=feature_extractor, device="cpu")
    rng = np.random.default_rng(0)
    waveforms = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 6400, 16000, 401, 9000)]
    batched = extractor(waveforms, batch_size=8)
    alone = [extractor([waveform])[0] for waveform in waveforms]
    assert [f.shape[0] for f in batched] == [49, 19, 49, 1, 27]  # (samples - 400) // 320 + 1
    assert list(extractor.num_frames([w.size for w in waveforms])) == [49, 19, 49, 1, 27]
    for got, want in zip(batched, alone):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


@requires_clip_libraries
def test_audio_refuses_other_rates_and_too_short_waveforms(audio_extractor):
    with pytest.raises(ValueError, match="at 8000 Hz but the model expects 16000 Hz"):
        audio_extractor([np.zeros(16000, np.float32)], sample_rate=8000)
    with pytest.raises(ValueError, match=r"waveform 1 has 200 samples \(12.5 ms\); the model needs at least 400"):
        audio_extractor([np.zeros(16000, np.float32), np.zeros(200, np.float32)])
    with pytest.raises(ValueError, match="waveform 0: expected a 1-D float array"):
        audio_extractor([np.zeros((2, 16000), np.float32)])
    with pytest.raises(ValueError, match="wrap a single waveform in a list"):
        audio_extractor(np.zeros(16000, np.float32))


# ---------------------------------------------------------------------------------------------------------------
# Video
# ---------------------------------------------------------------------------------------------------------------


@requires_clip_libraries
def test_video_gives_one_256_vector_per_frame_from_the_given_boxes(clips, video_extractor):
    frames = read_clip(clips["speech"]).frames
    num_frames = frames.shape[0]
    on_rectangle = [rectangle_box(i, num_frames) for i in range(num_frames)]
    features, report = video_extractor(frames, boxes=on_rectangle, batch_size=8)
    assert features.shape == (num_frames, 1, 256) and features.dtype == np.float32
    assert report.num_frames == num_frames and report.boxes_given and report.frames_without_speaker == 0
    np.testing.assert_array_equal(report.boxes, np.array(on_rectangle, np.float32))
    assert report.timings["detection"] < report.timings["backbone"]  # given boxes: nothing detected

    # The boxes are used: other boxes, other features; the same boxes in other batches, the same features.
    elsewhere, _ = video_extractor(frames, boxes=[[40, 0, 64, 10]] * num_frames)
    assert np.abs(features - elsewhere).max() > 1e-3
    rebatched, _ = video_extractor(frames, boxes=np.array(on_rectangle, np.float32), batch_size=3)
    np.testing.assert_allclose(rebatched, features, atol=1e-4, rtol=1e-4)
    # Features of a frame depend on its own box only.
    shifted = list(on_rectangle)
    shifted[5] = [0, 0, 20, 20]
    changed, _ = video_extractor(frames, boxes=shifted)
    differs = np.abs(changed - features).max(axis=(1, 2)) > 1e-4
    assert differs.tolist() == [i == 5 for i in range(num_frames)]


@requires_clip_libraries
def test_frames_without_a_speaker_reuse_the_last_box_and_are_counted(clips, video_extractor):
    frames = read_clip(clips["speech"]).frames[:6]
    boxes = [None, [8, 8, 40, 40], None, None, [20, 10, 50, 44], None]
    features, report = video_extractor(frames, boxes=boxes, batch_size=4)
    assert report.frames_without_speaker == 4
    assert report.speaker_found.tolist() == [False, True, False, False, True, False]
    expected = [[0, 0, 64, 48], [8, 8, 40, 40], [8, 8, 40, 40], [8, 8, 40, 40], [20, 10, 50, 44], [20, 10, 50, 44]]
    np.testing.assert_array_equal(report.boxes, np.array(expected, np.float32))  # whole frame before the first box
    explicit, _ = video_extractor(frames, boxes=expected)
    np.testing.assert_allclose(features, explicit, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="expected one box .* 6 frames, got 2 boxes"):
        video_extractor(frames, boxes=boxes[:2])
    with pytest.raises(ValueError, match=r"boxes\[1\] = .* outside the 64x48 frame"):
        video_extractor(frames, boxes=[None, [70, 0, 90, 10], None, None, None, None])


@requires_clip_libraries
def test_detected_speaker_is_tracked_and_missing_detections_are_counted(clips, video_extractor, monkeypatch):
    frames = read_clip(clips["speech"]).frames[:5]
    # The real detector with random weights finds no confident person: every frame falls back to the whole frame.
    features, report = video_extractor(frames)
    assert features.shape == (5, 1, 256) and not report.boxes_given
    assert report.frames_without_speaker == 5 and (report.boxes == [0, 0, 64, 48]).all()
    assert report.timings["detection"] > 0

    # Scripted detections: a speaker moving right, a more confident bystander, a missed frame, a non-person.
    speaker = [[10 + 4 * i, 10, 30 + 4 * i, 40] for i in range(5)]
    bystander = [44, 8, 62, 46]
    per_frame = [
        ([speaker[0], bystander], [0.95, 0.6], [1, 1]),   # first frame: the most confident person
        ([bystander, speaker[1]], [0.99, 0.7], [1, 1]),   # followed by overlap, not by score
        ([speaker[2]], [0.3], [1]),                       # not confident: no speaker, the last box is reused
        ([speaker[3], bystander], [0.9, 0.9], [18, 1]),   # the dog is no speaker; the bystander does not overlap
        ([speaker[4], bystander], [0.8, 0.9], [1, 1]),
    ]  # fmt: skip

    def scripted_detect(image_list, feature_maps, original_sizes):
        start = scripted_detect.calls
        scripted_detect.calls += len(original_sizes)
        return [{"boxes": np.array(b, np.float32), "scores": np.array(s), "labels": np.array(l)}
                for b, s, l in per_frame[start : start + len(original_sizes)]]  # fmt: skip

    scripted_detect.calls = 0
    monkeypatch.setattr(video_extractor, "_detect", scripted_detect)
    features, report = video_extractor(frames, batch_size=2)  # the track continues across batches
    chosen = [speaker[0], speaker[1], speaker[1], bystander, bystander]
    np.testing.assert_array_equal(report.boxes, np.array(chosen, np.float32))
    assert report.frames_without_speaker == 1 and report.speaker_found.tolist() == [True, True, False, True, True]
    explicit, _ = video_extractor(frames, boxes=chosen)
    np.testing.assert_allclose(features, explicit, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# Transcription (optional)
# ---------------------------------------------------------------------------------------------------------------




@requires_clip_libraries
def test_transcribe_runs_an_asr_pipeline(clips, tmp_path):
    from transformers import pipeline

    folder = tiny_asr_folder(tmp_path / "asr")
    clip = read_clip(clips["speech"])
    assert transcribe(clip, str(folder)) == "a"  # every frame says "a": CTC collapses them
    asr = pipeline("automatic-speech-recognition", model=str(folder))
    assert transcribe(clip.waveform, asr) == "a"
