"""Throughput of feature extraction from clips (extraction_dyken), and where the time goes.

    python benchmarks/bench_extraction.py      # writes benchmarks/results/extraction_cpu.json / .md

Clips: `--num_clips` clips of `--seconds` s at `--width`x`--height`, `--fps` frames per second (default 4 clips of
3 s at 640x360, 25 fps, the size of MIntRec's clips), H.264 video of a moving rectangle and AAC audio at 44.1 kHz
stereo, written by PyAV into a temporary folder. Models: the full-size architectures with random weights, which
time the same as trained ones (nothing is downloaded): wav2vec 2.0 base (`Wav2Vec2Config()`, 12 layers, 768 wide)
with the feature extractor of facebook/wav2vec2-base-960h, and torchvision's `fasterrcnn_resnet50_fpn(weights=None,
weights_backbone=None)` at its defaults (frames resized to 800 / 1333, 1,000 region proposals). Random weights find
no person, so every frame falls back to the whole frame; the proposals and the box head run all the same.

Stages timed per clip (after one untimed warm-up clip):
  decode        read_clip: demux, H.264 and AAC decoding, RGB conversion, resampling to 16 kHz mono (PyAV);
  wav2vec2      AudioFeatureExtractor on the clip's waveform (normalisation + model);
  transform     the detector's normalisation and resize;
  backbone      ResNet-50 + FPN;
  detection     RPN + box head + the speaker choice (skipped when speaker boxes are given);
  roi_features  RoIAlign of the speaker box + mean over 7x7.
A Faster R-CNN pass over a 640x360 frame takes seconds on a small CPU, so only the first `--video_frames` frames of
each clip go through the detector (default 8; 0 = all) and the per-frame cost is scaled to the whole clip. The
throughput is reported with the speaker detected, and with the speaker boxes given (no detection).

The machine may be shared: the load average before and after is recorded with the results.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from extraction_dyken import AudioFeatureExtractor, VideoFeatureExtractor, read_clip  # noqa: E402

VIDEO_STAGES = ("transform", "backbone", "detection", "roi_features")


def write_clip(path: Path, seconds: float, fps: int, width: int, height: int, seed: int) -> None:
    """An H.264 + AAC MP4: a bright rectangle crossing a textured frame, a tone in noise (44.1 kHz stereo)."""
    import av

    rng = np.random.default_rng(seed)
    num_frames, sample_rate = round(seconds * fps), 44100
    background = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)  # texture: a realistic bitstream size
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=sample_rate)
        audio.layout = "stereo"
        for index in range(num_frames):
            image = background.copy()
            left = index * (width - width // 4) // max(num_frames - 1, 1)
            image[height // 4 : 3 * height // 4, left : left + width // 4] = 255
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        total = round(seconds * sample_rate)
        time_axis = np.arange(total) / sample_rate
        signal = (0.3 * np.sin(2 * np.pi * 200 * time_axis) + 0.05 * rng.standard_normal(total)).astype(np.float32)
        samples = np.stack([signal, signal])
        for start in range(0, total, 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start : start + 1024]), format="fltp",
                                               layout="stereo")  # fmt: skip
            frame.sample_rate, frame.pts = sample_rate, start
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)


def build_extractors(device: str):
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    feature_extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                                 do_normalize=True, return_attention_mask=False)  # fmt: skip
    audio = AudioFeatureExtractor(model=Wav2Vec2Model(Wav2Vec2Config()), feature_extractor=feature_extractor,
                                  device=device)  # fmt: skip
    video = VideoFeatureExtractor(weights=None, device=device)
    return audio, video


def time_clip(path: Path, audio: AudioFeatureExtractor, video: VideoFeatureExtractor, video_frames: int,
              batch_size: int) -> dict:  # fmt: skip
    """Seconds per stage for one clip; the video stages over the frames that went through the detector."""
    start = time.perf_counter()
    clip = read_clip(path)
    decode = time.perf_counter() - start
    start = time.perf_counter()
    audio_features = audio([clip.waveform])[0]
    wav2vec2 = time.perf_counter() - start
    frames = clip.frames if video_frames <= 0 else clip.frames[:video_frames]
    video_features, report = video(frames, batch_size=batch_size)
    return {
        "clip_seconds": clip.duration, "frames": int(clip.frames.shape[0]), "frames_timed": int(frames.shape[0]),
        "audio_frames": int(audio_features.shape[0]), "decode": decode, "wav2vec2": wav2vec2,
        **{stage: report.timings[stage] for stage in VIDEO_STAGES},
    }  # fmt: skip


def summarise(clips: list) -> dict:
    """Per-clip means, with the video stages scaled from the frames timed to all of the clip's frames."""
    per_clip = {"decode": [], "wav2vec2": [], **{stage: [] for stage in VIDEO_STAGES}}
    for clip in clips:
        per_clip["decode"].append(clip["decode"])
        per_clip["wav2vec2"].append(clip["wav2vec2"])
        for stage in VIDEO_STAGES:
            per_clip[stage].append(clip[stage] * clip["frames"] / clip["frames_timed"])
    mean = {stage: float(np.mean(values)) for stage, values in per_clip.items()}
    frames = float(np.mean([clip["frames"] for clip in clips]))
    seconds = float(np.mean([clip["clip_seconds"] for clip in clips]))
    detected = sum(mean.values())
    given_boxes = detected - mean["detection"]
    audio_only = mean["decode"] + mean["wav2vec2"]

    def rates(total):
        return {"seconds_per_clip": total, "clips_per_second": 1 / total, "video_seconds_per_second": seconds / total}

    return {
        "seconds_per_clip_by_stage": mean,
        "share_by_stage": {stage: value / detected for stage, value in mean.items()},
        "video_seconds_per_frame": {stage: mean[stage] / frames for stage in VIDEO_STAGES},
        "throughput": {"speaker_detected": rates(detected), "speaker_boxes_given": rates(given_boxes),
                       "audio_only": rates(audio_only)},  # fmt: skip
        "clip_seconds": seconds,
        "frames_per_clip": frames,
    }


def load_average():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def write_markdown(path: Path, result: dict) -> None:
    summary, setup = result["summary"], result["setup"]
    stages = summary["seconds_per_clip_by_stage"]
    lines = [
        "# Feature extraction from clips: throughput on CPU",
        "",
        f"Command: `{result['command']}`",
        "",
        f"{setup['num_clips']} clips of {summary['clip_seconds']:.2f} s, {setup['width']}x{setup['height']} at "
        f"{setup['fps']} fps ({summary['frames_per_clip']:.0f} frames), H.264 + AAC 44.1 kHz stereo. wav2vec 2.0 "
        "base and Faster R-CNN ResNet-50-FPN at full size with random weights (torchvision's defaults: resize to "
        f"800 / 1333, 1,000 proposals). The first {setup['video_frames_timed']} frames of each clip went through the "
        "detector; the video stages are scaled to the whole clip.",
        "",
        f"Machine: {result['machine']['cpu_count']} CPU cores, torch {result['machine']['torch']} "
        f"({result['machine']['torch_threads']} threads), torchvision {result['machine']['torchvision']}, PyAV "
        f"{result['machine']['av']}; load average {result['load_average_before']} before, "
        f"{result['load_average_after']} after. Run took {result['wall_seconds']:.0f} s.",
        "",
        "| Throughput | s per clip | clips / s | s of video / s |",
        "|---|---:|---:|---:|",
    ]
    names = {
        "speaker_detected": "all stages, speaker detected",
        "speaker_boxes_given": "speaker boxes given (no detection)",
        "audio_only": "audio only (decode + wav2vec 2.0)",
    }
    for key, name in names.items():
        rate = summary["throughput"][key]
        lines.append(f"| {name} | {rate['seconds_per_clip']:.1f} | {rate['clips_per_second']:.4f} | "
                     f"{rate['video_seconds_per_second']:.4f} |")  # fmt: skip
    lines += ["", "| Stage | s per clip | share | s per frame |", "|---|---:|---:|---:|"]
    for stage, seconds in stages.items():
        per_frame = summary["video_seconds_per_frame"].get(stage)
        lines.append(f"| {stage} | {seconds:.2f} | {100 * summary['share_by_stage'][stage]:.1f} % | "
                     f"{'' if per_frame is None else f'{per_frame:.3f}'} |")  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_clips", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--video_frames", type=int, default=8, help="frames per clip through the detector (0 = all)")
    parser.add_argument("--video_batch_size", type=int, default=4, help="frames per detector pass")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--results_name", default="extraction_cpu")
    parser.add_argument("--results_dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    import av
    import torchvision

    started = time.perf_counter()
    load_before = load_average()
    audio, video = build_extractors(args.device)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index in range(args.num_clips + 1):  # + the warm-up clip
            paths.append(Path(folder) / f"clip{index}.mp4")
            write_clip(paths[-1], args.seconds, args.fps, args.width, args.height, seed=index)
        time_clip(paths[0], audio, video, video_frames=1, batch_size=1)  # warm-up: allocator, oneDNN kernels
        clips = []
        for index, path in enumerate(paths[1:], start=1):
            clips.append(time_clip(path, audio, video, args.video_frames, args.video_batch_size))
            stages = (f"{key} {value:.2f}" if isinstance(value, float) else f"{key} {value}"
                      for key, value in clips[-1].items())  # fmt: skip
            print(f"clip {index}/{args.num_clips}: " + ", ".join(stages), flush=True)
    summary = summarise(clips)
    result = {
        "command": " ".join(["python benchmarks/bench_extraction.py", *sys.argv[1:]]),
        "setup": {"num_clips": args.num_clips, "seconds": args.seconds, "fps": args.fps, "width": args.width,
                  "height": args.height, "video_frames_timed": args.video_frames,
                  "video_batch_size": args.video_batch_size, "device": args.device},  # fmt: skip
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "torchvision": torchvision.__version__, "av": av.__version__},  # fmt: skip
        "clips": clips,
        "summary": summary,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "wall_seconds": time.perf_counter() - started,
    }
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{args.results_name}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    write_markdown(results_dir / f"{args.results_name}.md", result)
    print((results_dir / f"{args.results_name}.md").read_text())


if __name__ == "__main__":
    main()
