"""`python -m datasets_scripts extract`: releases in the official layout built from clips.

Real MP4 clips written by PyAV (a moving rectangle, a tone), random-weight models from configs saved to folders as a
user's would be (a one-layer wav2vec 2.0 with the base model's strides, a tiny CTC model for transcription), and
torchvision's Faster R-CNN ResNet-50-FPN with seeded random weights run at the clips' 64x48 size. The command runs
in-process where it can and as users run it (a subprocess, `accelerate launch` with two CPU processes) where that is
the point: kill and resume, the clips split across processes. Skipped without PyAV and torchvision.
"""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from clip_helpers import (  # noqa: E402
    HAVE_CLIP_LIBRARIES,
    make_clip,
    one_thread,  # noqa: F401 (an autouse fixture)
    rectangle_box,
    tiny_asr_folder,
    tiny_wav2vec2,
)


if not HAVE_CLIP_LIBRARIES:
    pytest.skip('needs PyAV and torchvision: pip install -e ".[clips]"', allow_module_level=True)

from datasets_scripts import load_mintrec, safe_load_file  # noqa: E402
from datasets_scripts.__main__ import main  # noqa: E402
from datasets_scripts.clips import RECORD_NAME, WORK_DIR_NAME, build_detector  # noqa: E402


HEADER = "season\tepisode\tclip\ttext\tlabel\tsplit\tclip_path"
GOOD_ROWS = [
    "S01\tE01\t1\thello there, how's it going?\tGreet\ttrain\t",
    "S01\tE01\t2\toh, that's a \"great\" idea.\tTaunt\ttrain\t",
    "S01\tE01\t3\tsee you tomorrow at the café.\tLeave\ttrain\t",
    "S01\tE02\t4\tcould you help me with this?\tAsk for help\tdev\t",
    "S01\tE02\t5\t\tThank\ttest\t",  # no text: transcribed (--asr_model)
    "S02\tE03\t9\tsorry, my fault.\tApologise\ttest\trecordings/take 9.mp4",  # an explicit clip_path
]  # fmt: skip
BAD_ROWS = {
    "S09_E01_1": ("S09\tE01\t1\tcorrupt.\tInform\ttrain\tbad/corrupt.mp4", "not a readable media file"),
    "S09_E01_2": ("S09\tE01\t2\tno audio.\tInform\ttrain\tbad/no_audio.mp4", "no audio stream"),
    "S09_E01_3": ("S09\tE01\t3\tno video.\tInform\ttrain\tbad/no_video.mp4", "no video stream"),
    "S09_E01_4": ("S09\tE01\t4\ttoo short.\tInform\ttrain\tbad/short.mov", "too short: 0.006 s of audio"),
    "S09_E01_5": ("S09\tE01\t5\tno file.\tInform\ttrain\t", "no clip file (looked for S09/E01/5.mp4, S09_E01_5.mp4"),
}  # fmt: skip
BOXED_CLIPS = ("S01_E01_1", "S01_E02_4")  # speaker boxes from --boxes; the others are detected
SUBPROCESS_TIMEOUT = 240


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip_releases")
    clips = root / "clips"
    frame_counts = {}
    for seed, row in enumerate(GOOD_ROWS, start=1):
        season, episode, number, *_, clip_path = row.split("\t")
        path = clips / (clip_path or f"{season}/{episode}/{number}.mp4")
        path.parent.mkdir(parents=True, exist_ok=True)
        seconds = 0.8 + 0.1 * seed
        make_clip(path, seconds=seconds, fps=10, seed=seed)
        frame_counts[f"{season}_{episode}_{number}"] = round(seconds * 10)
    (clips / "bad").mkdir()
    make_clip(clips / "bad" / "no_audio.mp4", seconds=0.5, audio=False)
    make_clip(clips / "bad" / "no_video.mp4", seconds=0.5, video=False)
    make_clip(clips / "bad" / "short.mov", seconds=0.1, fps=10, audio_codec="pcm_s16le", audio_samples=100)
    (clips / "bad" / "corrupt.mp4").write_bytes((clips / "S01" / "E01" / "1.mp4").read_bytes()[:1500])

    (root / "annotations.tsv").write_text("\n".join([HEADER, *GOOD_ROWS]) + "\n", encoding="utf-8")
    bad_rows = [row for row, _ in BAD_ROWS.values()]
    (root / "with_bad_clips.tsv").write_text("\n".join([HEADER, *GOOD_ROWS, *bad_rows]) + "\n", encoding="utf-8")
    boxes = {sample_id: [rectangle_box(i, frame_counts[sample_id]) for i in range(frame_counts[sample_id])]
             for sample_id in BOXED_CLIPS}  # fmt: skip
    boxes["S01_E02_4"][2] = None  # a frame where the annotator saw no speaker
    (root / "boxes.json").write_text(json.dumps(boxes))

    model, feature_extractor = tiny_wav2vec2()
    model.save_pretrained(root / "wav2vec2")
    feature_extractor.save_pretrained(root / "wav2vec2")
    tiny_asr_folder(root / "asr")

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_DATASETS_CACHE": str(root / "hf-datasets")}  # fmt: skip
    env.pop("ACCELERATE_USE_CPU", None)
    options = [
        "--clips", str(clips), "--audio_model", str(root / "wav2vec2"), "--asr_model", str(root / "asr"),
        "--boxes", str(root / "boxes.json"), "--video_weights", "none", "--detector_min_size", "48",
        "--detector_max_size", "64", "--detector_proposals", "20", "--benchmark", "MIntRec",
    ]  # fmt: skip
    return SimpleNamespace(root=root, clips=clips, options=options, env=env, frame_counts=frame_counts, boxes=boxes)


def extract(assets, out, *extra, tsv="annotations.tsv"):
    """Run the command in this process; its exit status."""
    return main(["extract", *assets.options, "--tsv", str(assets.root / tsv), "--out", str(out), *extra])


def extract_command(assets, out, *extra):
    return ["-m", "datasets_scripts", "extract", *assets.options, "--tsv", str(assets.root / "annotations.tsv"),
            "--out", str(out), *extra]  # fmt: skip


def release_contents(folder: Path) -> dict:
    """{relative path: TSV text or unpickled features} of a MIntRec release."""
    contents = {}
    for name in ("train.tsv", "dev.tsv", "test.tsv"):
        contents[name] = (folder / name).read_text(encoding="utf-8")
    for name in ("audio_data/audio_feats.pkl", "video_data/video_feats.pkl"):
        contents[name] = safe_load_file(folder / name)
    return contents


def assert_same_release(got: Path, want: Path) -> None:
    got, want = release_contents(got), release_contents(want)
    for name in ("train.tsv", "dev.tsv", "test.tsv"):
        assert got[name] == want[name], name
    for name in ("audio_data/audio_feats.pkl", "video_data/video_feats.pkl"):
        assert sorted(got[name]) == sorted(want[name]), name
        for sample_id, features in want[name].items():
            np.testing.assert_allclose(np.asarray(got[name][sample_id]), np.asarray(features), rtol=1e-4, atol=1e-4,
                                       err_msg=f"{name} {sample_id}")  # fmt: skip


@pytest.fixture(scope="module")
def reference(assets):
    """The release of the good clips, extracted in one uninterrupted in-process run."""
    out = assets.root / "reference"
    assert extract(assets, out) == 0
    return out


# ---------------------------------------------------------------------------------------------------------------
# A release from clips
# ---------------------------------------------------------------------------------------------------------------


def test_release_from_clips_loads_with_load_mintrec_and_trains_one_step(assets, reference):
    assert not (reference / WORK_DIR_NAME).exists()  # removed once the release is written
    record = json.loads((reference / RECORD_NAME).read_text())
    assert record["clips"] == {"train": 3, "dev": 1, "test": 2} and record["skipped_clips"] == []
    assert record["transcribed"] == ["S01_E02_5"] and record["video"]["boxes_given"] == 2
    assert "/" not in record["audio"]["model"]  # no machine path in a shared release

    dataset = load_mintrec(reference, cache_dir=str(assets.root / "hf-datasets"))
    assert {split: dataset[split].num_rows for split in dataset} == {"train": 3, "validation": 1, "test": 2}
    rows = {row["id"]: row for split in dataset.values() for row in split.with_format("numpy")}
    assert rows["S01_E02_5"]["text"] == "a"  # the tiny ASR model says "a" for everything
    assert rows["S01_E01_2"]["text"] == 'oh, that\'s a "great" idea.'  # quotes kept verbatim
    assert dataset["test"].features["label"].int2str(int(rows["S02_E03_9"]["label"])) == "Apologise"
    for sample_id, row in rows.items():
        frames = assets.frame_counts[sample_id]
        assert row["video_features"].shape == (frames, 256)  # one vector per decoded frame
        audio_frames = row["audio_features"].shape[0]
        assert row["audio_features"].shape[1] == 768 and abs(audio_frames / (frames / 10) - 50) < 3  # ~50 per second

    # The command's features are the library's: the same clip through extraction_dyken directly.
    from extraction_dyken import AudioFeatureExtractor, VideoFeatureExtractor, read_clip

    audio = AudioFeatureExtractor(str(assets.root / "wav2vec2"), device="cpu")
    video = VideoFeatureExtractor(detector=build_detector("none", 48, 64, 20), device="cpu")
    for sample_id, path in (("S01_E02_4", "S01/E02/4.mp4"), ("S02_E03_9", "recordings/take 9.mp4")):
        clip = read_clip(assets.clips / path)
        np.testing.assert_allclose(rows[sample_id]["audio_features"], audio([clip.waveform])[0], rtol=1e-4, atol=1e-4)
        features, report = video(clip.frames, boxes=assets.boxes.get(sample_id))
        np.testing.assert_allclose(rows[sample_id]["video_features"], features[:, 0], rtol=1e-4, atol=1e-4)
        assert record["frames_without_speaker"].get(sample_id, 0) == report.frames_without_speaker
    assert record["frames_without_speaker"]["S01_E02_4"] == 1  # the frame without a box
    assert record["frames_without_speaker"]["S02_E03_9"] == assets.frame_counts["S02_E03_9"]  # random detector

    # One training step of a tiny DyKen-Hyena on a collated batch.
    from transformers import AutoTokenizer

    from modeling_dyken import DyKenForSequenceClassification, resolve_text_model_path
    from processing_dyken import DyKenProcessor
    from tiny_dyken import TINY_BERT, tiny_config

    tokenizer = AutoTokenizer.from_pretrained(resolve_text_model_path("all-MiniLM-L6-v2"))
    config = tiny_config(text_config={**TINY_BERT, "vocab_size": tokenizer.vocab_size}, num_labels=20)
    processor = DyKenProcessor(
        tokenizer, max_text_length=config.max_text_length, max_audio_length=config.max_audio_length,
        max_video_length=config.max_video_length, padding="longest",
    )  # fmt: skip
    batch = processor.collate(list(dataset["train"].with_format("numpy")))
    torch.manual_seed(0)
    model = DyKenForSequenceClassification(config).train()
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    gradients = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    for modality in ("audio", "video"):  # the extracted features reach the loss
        assert gradients[f"dyken.fusion.context.{modality}_attention.key.weight"].abs().sum() > 0


def test_mintrec2_release_from_clips_with_out_of_scope_rows(assets, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    rows = ["Dialogue_id\tUtterance_id\tText\tLabel\tsplit\tspeakername"]  # timestamps and Source left out
    labels = [("Greet", "train"), ("Doubt", "dev"), ("Warn", "test"), ("UNK", "train"), ("UNK", "dev"), ("UNK", "test")]
    for dialogue, (label, split) in enumerate(labels):
        nested = dialogue == 2  # dia{D}/utt{U}.mp4 is found too
        path = clips / (f"dia{dialogue}/utt0.mp4" if nested else f"dia{dialogue}_utt0.mp4")
        path.parent.mkdir(exist_ok=True)
        make_clip(path, seconds=0.6, fps=10, seed=dialogue)
        rows.append(f"{dialogue}\t0\tutterance number {dialogue}.\t{label}\t{split}\tGlenn")
    (tmp_path / "annotations.tsv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "MIntRec2.0"
    options = ["extract", "--clips", str(clips), "--tsv", str(tmp_path / "annotations.tsv"), "--out", str(out),
               "--benchmark", "MIntRec2.0", "--audio_model", str(assets.root / "wav2vec2"), "--video_weights", "none",
               "--detector_min_size", "48", "--detector_max_size", "64", "--detector_proposals", "20"]  # fmt: skip
    assert main(options) == 0
    assert (out / "in-scope" / "video_data" / "swin_roi_binary.pkl").is_file()
    assert (out / "out-of-scope" / "MIntRec2.0-OOD" / "audio_data" / "wavlm_feats_binary.pkl").is_file()
    header = (out / "in-scope" / "train.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["Dialogue_id", "Utterance_id", "Text", "Label", "Start_timestamp", "End_timestamp", "Source",
                      "speakername"]  # fmt: skip
    dataset = load_mintrec(out, benchmark="MIntRec2.0", include_out_of_scope=True, cache_dir=str(tmp_path / "cache"))
    assert {split: dataset[split].num_rows for split in dataset} == {
        "train": 1, "validation": 1, "test": 2, "ood_train": 1, "ood_validation": 1}  # fmt: skip
    test = {row["id"]: row for row in dataset["test"].with_format("numpy")}
    assert test["dia2_utt0"]["video_features"].shape == (6, 256) and test["dia5_utt0"]["label"] == 30  # UNK
    assert test["dia2_utt0"]["Source"] == "" and test["dia2_utt0"]["speakername"] == "Glenn"


def test_official_tsvs_give_their_split_by_name(tmp_path):
    from datasets_scripts.clips import AnnotationError, read_annotations

    header = "season\tepisode\tclip\ttext\tlabel"
    for number, name in enumerate(("train", "dev", "test")):
        (tmp_path / f"{name}.tsv").write_text(f"{header}\nS05\tE16\t{number}\tsome words.\tInform\n")
    (tmp_path / "S05" / "E16").mkdir(parents=True)
    (tmp_path / "S05" / "E16" / "1.mkv").write_bytes(b"")  # any of the extensions
    paths = [tmp_path / f"{name}.tsv" for name in ("train", "dev", "test")]
    annotations = read_annotations(paths, "MIntRec", tmp_path, transcribe_empty_text=False)
    assert [(a.sample_id, a.split) for a in annotations] == [("S05_E16_0", "train"), ("S05_E16_1", "dev"),
                                                             ("S05_E16_2", "test")]  # fmt: skip
    assert annotations[0].clip_file is None and annotations[1].clip_file == tmp_path / "S05" / "E16" / "1.mkv"
    (tmp_path / "mine.tsv").write_text(f"{header}\nS05\tE16\t9\tsome words.\tInform\n")
    with pytest.raises(AnnotationError, match="mine.tsv: no `split` column, and the file name does not name a split"):
        read_annotations([tmp_path / "mine.tsv"], "MIntRec", tmp_path, transcribe_empty_text=False)


# ---------------------------------------------------------------------------------------------------------------
# Resuming, and the clips split across processes
# ---------------------------------------------------------------------------------------------------------------


def test_killed_extraction_resumes_without_redoing_finished_clips(assets, reference, caplog):
    out = assets.root / "killed"
    work_clips = out / WORK_DIR_NAME / "clips"
    command = [sys.executable, *extract_command(assets, out, "--audio_batch_size", "1", "--keep_work_dir")]
    log = assets.root / "killed.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=assets.env, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT
    try:
        while not list(work_clips.glob("*.npz")):  # kill it as soon as the first clip is saved
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no clip was finished in time"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    finished = {path.name: path.stat().st_mtime_ns for path in work_clips.glob("*.npz")}
    assert 1 <= len(finished) < len(GOOD_ROWS) and not (out / RECORD_NAME).exists()

    with caplog.at_level(logging.INFO, logger="datasets_scripts.clips"):
        assert extract(assets, out, "--audio_batch_size", "1", "--keep_work_dir") == 0
    assert f"{len(finished)} already extracted, {len(GOOD_ROWS) - len(finished)} to extract" in caplog.text
    for name, mtime in finished.items():
        assert (work_clips / name).stat().st_mtime_ns == mtime, f"{name} was extracted again"
    assert not list(work_clips.glob(".*.tmp-*"))  # a save cut by the kill leaves nothing behind
    assert_same_release(out, reference)


def test_two_processes_write_one_release_equal_to_one_process(assets, reference):
    out = assets.root / "two_processes"
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--dynamo_backend", "no", "--main_process_port", "29533"]  # fmt: skip
    process = subprocess.run([*launcher, *extract_command(assets, out)], cwd=REPO_ROOT, capture_output=True, text=True,
                             env={**assets.env, "ACCELERATE_USE_CPU": "1"}, timeout=SUBPROCESS_TIMEOUT)  # fmt: skip
    assert process.returncode == 0, process.stderr[-4000:]
    assert "on 2 processes" in process.stderr
    assert process.stdout.count("Wrote ") == 1  # the main process alone writes the release
    assert_same_release(out, reference)
    record, want = json.loads((out / RECORD_NAME).read_text()), json.loads((reference / RECORD_NAME).read_text())
    for key in ("clips", "frames_without_speaker", "transcribed", "skipped_clips"):
        assert record[key] == want[key], key


# ---------------------------------------------------------------------------------------------------------------
# Bad clips, bad annotations, output folders
# ---------------------------------------------------------------------------------------------------------------


def test_bad_clips_are_named_and_stop_the_command_unless_skipped(assets, reference, capsys, caplog):
    out = assets.root / "with_bad_clips"
    assert extract(assets, out, tsv="with_bad_clips.tsv") == 1
    error = capsys.readouterr().err
    assert f"{len(BAD_ROWS)} bad clip(s); no release was written" in error
    for sample_id, (row, reason) in BAD_ROWS.items():
        line = next(line for line in error.splitlines() if line.strip().startswith(sample_id))
        assert reason in line, line
        clip_path = row.split("\t")[-1]
        assert clip_path in line if clip_path else "no file" in line
    assert not (out / RECORD_NAME).exists() and not (out / "train.tsv").exists()
    assert f"The features of the {len(GOOD_ROWS)} clip(s) done so far are kept" in error

    with caplog.at_level(logging.INFO, logger="datasets_scripts.clips"):
        assert extract(assets, out, "--skip_bad_clips", tsv="with_bad_clips.tsv") == 0
    # Only the clip that failed to decode is read again (it may have been fixed); the good ones are not recomputed.
    assert f"{len(GOOD_ROWS)} already extracted, 1 to extract, {len(BAD_ROWS) - 1} bad" in caplog.text
    assert f"Left out {len(BAD_ROWS)} bad clip(s) (--skip_bad_clips)" in caplog.text
    record = json.loads((out / RECORD_NAME).read_text())
    assert {clip["sample_id"] for clip in record["skipped_clips"]} == set(BAD_ROWS)
    assert_same_release(out, reference)  # the good clips, as without the bad ones


@pytest.mark.parametrize("rows, message", [
    (["S01\tE01\t1\thi.\tGreat\ttrain\t"], "line 2 (sample S01_E01_1): unknown label 'Great'"),
    (["S01\tE01\t1\thi.\tGreet\tholdout\t"], "split 'holdout'; expected train, dev (or validation) or test"),
    (["S01\tE01\t1\thi.\tGreet\ttrain\t", "S01\tE01\t1\tagain.\tGreet\ttest\t"],
     "line 3 (sample S01_E01_1): duplicate"),
    (["S01\tE01\t1\t\tGreet\ttrain\t"], "empty text; fill it in, or pass --asr_model"),
    (["S01\tE01\t1\thi.\tGreet\ttrain\t"], "no clip in split(s) ['dev', 'test']"),
])  # fmt: skip
def test_bad_annotations_are_refused_with_file_and_line(assets, tmp_path, capsys, rows, message):
    tsv = tmp_path / "annotations.tsv"
    tsv.write_text("\n".join([HEADER, *rows]) + "\n")
    options = [option for option in assets.options]
    options[options.index("--asr_model") : options.index("--asr_model") + 2] = []  # empty texts are errors then
    assert main(["extract", *options, "--tsv", str(tsv), "--out", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert message in error and str(tsv) in error
    assert not (tmp_path / "out").exists()


def test_output_folder_rules(assets, reference, tmp_path, capsys):
    # A finished release is not extracted again unless asked to.
    assert extract(assets, reference) == 1
    assert "already holds a finished release" in capsys.readouterr().err
    # Someone else's folder is never used.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "train.tsv").write_text("mine\n")
    assert extract(assets, foreign, "--overwrite") == 1
    assert "was not written by `extract`" in capsys.readouterr().err
    assert (foreign / "train.tsv").read_text() == "mine\n"
    # An unfinished extraction is resumed only with the same settings.
    unfinished = tmp_path / "unfinished"
    (unfinished / WORK_DIR_NAME).mkdir(parents=True)
    settings = {"format": 1, "benchmark": "MIntRec", "audio_model": "facebook/wav2vec2-base-960h"}
    (unfinished / WORK_DIR_NAME / "settings.json").write_text(json.dumps(settings))
    assert extract(assets, unfinished) == 1
    error = capsys.readouterr().err
    assert "other settings" in error and "audio_model: 'facebook/wav2vec2-base-960h' then" in error


# ---------------------------------------------------------------------------------------------------------------
# The whole path a user takes: clips -> release -> train_accelerate.py -> pipeline(...) on a new clip
# ---------------------------------------------------------------------------------------------------------------


def test_a_release_from_clips_trains_and_its_checkpoint_reads_a_new_clip(assets, reference, tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertModel, pipeline

    import train_accelerate
    from extraction_dyken import AudioFeatureExtractor, VideoFeatureExtractor, read_clip
    from modeling_dyken import DyKenForSequenceClassification, resolve_text_model_path
    from processing_dyken import DyKenProcessor

    tokenizer = AutoTokenizer.from_pretrained(resolve_text_model_path("all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(tmp_path / "tiny-bert")
    tokenizer.save_pretrained(tmp_path / "tiny-bert")
    job = tmp_path / "job"
    arguments = ["--dataset", str(reference), "--model_name_or_path", str(tmp_path / "tiny-bert"), "--fusion", "dyken",
                 "--max_train_steps", "2", "--per_device_train_batch_size", "2", "--checkpointing_steps", "no",
                 "--output_dir", str(job)]  # fmt: skip
    assert train_accelerate.main(arguments) == 0
    best = job / "dyken" / "best_checkpoint"
    # The checkpoint names the extractors the release recorded (a folder by its name; random detector weights by none).
    saved = DyKenProcessor.from_pretrained(best)
    assert (saved.audio_feature_model, saved.video_feature_model) == ("wav2vec2", None)

    # A clip the model has never seen, read through the pipeline saved with the checkpoint, with the extractors the
    # release was built with (random weights here; the saved ids name the official ones).
    new_clip = make_clip(tmp_path / "new.mp4", seconds=1.2, fps=10, seed=7)
    audio = AudioFeatureExtractor(str(assets.root / "wav2vec2"), device="cpu")
    video = VideoFeatureExtractor(detector=build_detector("none", 48, 64, 20), device="cpu")
    classifier = pipeline(model=str(best), trust_remote_code=True, device="cpu", audio_extractor=audio,
                          video_extractor=video)
    text = "could you give me a hand?"
    answer = classifier({"text": text, "video": str(new_clip)}, top_k=3)

    model = DyKenForSequenceClassification.from_pretrained(best).eval()
    clip = read_clip(new_clip)
    processor = DyKenProcessor.from_pretrained(best)
    batch = processor([text], audio_features=[audio([clip.waveform])[0]], video_features=[video(clip.frames)[0]])
    with torch.no_grad():
        probabilities = model(**batch).logits.softmax(-1)[0]
    expected = probabilities.topk(3)
    assert [entry["label"] for entry in answer] == [model.config.id2label[int(i)] for i in expected.indices]
    np.testing.assert_allclose([entry["score"] for entry in answer], expected.values.numpy(), atol=1e-5)
