"""Synthetic MIntRec / MIntRec2.0 releases with a controllable non-verbal signal.

`write_synthetic_release` writes a complete release folder in the official layout of the MIntRec
and MIntRec2.0 releases (TSV headers, sample ids, pickle names, array shapes, official
label names and order), so the real loaders, the processor and the trainer can be exercised end to
end without the (hand-downloaded) real data. The content is random but built so that the question
the method asks -- "does the model use *how* a word is said?" -- has a known answer.

`ensure_release` is the way to get a release: it finds or writes the release with the given parameters
(by default the built-in ones of the benchmark, `DEFAULT_RELEASE_PARAMS`) in a cache or in a folder of
your choice.

How a clip is built (all randomness from `seed`; the cue directions from a fixed constant):

1. Label. Each split cycles through the label list (balanced classes) and is shuffled.

2. Text. Lower-case utterances with commas, apostrophes, mid-sentence double quotes and non-ASCII
   words ("café", "naïve", "zoë"), made from sentence templates with slots ({name}, {thing},
   {place}, {time}), an optional discourse prefix ("well,", "listen,") and an optional tail clause,
   so lengths run from 2 to about 22 words (about 9 on average).
   - Intents outside `NONVERBAL_PAIRS` have their own templates (distinct key words). With
     probability `text_noise` an example instead takes a sentence from a generic pool shared by all
     of them ("so, yeah."), so text alone is good but not perfect on them.
   - The two intents of a pair (e.g. Praise / Taunt) draw their sentence from ONE shared template
     pool with the same sampling procedure, so their text distributions are identical: a text-only
     model is at chance between them. Each pair template marks one *cue word* ("oh, that's a
     great idea" -> "great").

3. Timing. A clip of T frames has leading and trailing silence (2-10 % of T each); the words fill
   the rest, each lasting in proportion to (number of characters + 2). Word w therefore covers
   frames [round(T * start_w), round(T * end_w)) (at least one) in every modality (the same
   clip-relative times for audio and video). Audio runs at 50 frames/s (wav2vec 2.0 / WavLM): about 10.5 frames per
   word times a log-normal speaking rate (sigma 0.25), plus log-normal pauses (median 15 frames,
   sigma 0.8), so clips last ~2.5 s on average (real MIntRec: 2.38 s) with a long tail, capped at
   the benchmark's real maximum (MIntRec 477 frames, MIntRec2.0 400). Video has 0.42-0.50 times as
   many frames (capped at 225 / 180). Both are then multiplied by `length_scale` (at least 4).

4. Background features (audio 768-d, video 256-d), float32:
   x[t] = offset + noise[t], offset ~ N(0, clip_offset_std^2 I) drawn once per clip and modality,
   noise[t] ~ N(0, I) (per-dimension std sigma = 1). The per-clip offset hides the cue from
   anything that only looks at a clip's mean: along any direction it varies as much as the cue.

5. The non-verbal cue. Each pair has a *cued* intent (Taunt, Joke, Criticize) and a *plain* one
   (Praise, Inform, Complain) and carries its cue in fixed modalities (`NonverbalPair.modalities`):
   audio for Praise/Taunt (a mocking tone), video for Inform/Joke (a smirk), both for
   Complain/Criticize. For each (pair, modality) a fixed random unit direction u (independent of
   `seed`) is drawn. In a cued clip,
       x[t] += nonverbal_signal * sigma * u      for the frames t of the cue word,
   i.e. along u the cue word's frames are shifted by `nonverbal_signal` noise standard deviations
   (an ideal detector averaging the k frames of the word sees a signal-to-noise ratio of
   nonverbal_signal * sqrt(k)). In a plain clip, with probability `distractor_rate` the same cue
   is put on a *different* word, so "is the cue anywhere in the clip?" is only partly informative:
   what identifies the cued intent is the cue *on the cue word*, i.e. token-level alignment of text
   and non-verbal frames (the premise of DyKen-Hyena: a mocking tone on the word "great").
   `nonverbal_signal=0` adds nothing, so the paired intents become indistinguishable. The random
   draws do not depend on `nonverbal_signal`: two releases that differ only in it have the same
   texts, lengths and background, and differ exactly by the cue.

6. MIntRec2.0 out-of-scope utterances (label UNK) come from their own off-topic templates, carry
   no cue, and share dialogues with the in-scope utterances of the same split.

Besides the official files the release folder holds `synthetic_metadata.json`: the generation
parameters and, for every example of a pair intent, the cue word and its frame segments (for
analyses such as "what do the dynamic kernels do on the cue word?").

Features are written with the standard pickle module (protocol 4); readers must use the project's
restricted unpickler (datasets_scripts.safe_pickle), as for the real files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import numbers
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .builders import MINTREC2_LABELS, MINTREC2_OOS_LABEL, MINTREC_LABELS, normalize_benchmark


__all__ = [
    "NonverbalPair",
    "NONVERBAL_PAIRS",
    "NONVERBAL_INTENTS",
    "DEFAULT_RELEASE_PARAMS",
    "SyntheticReleaseMismatchError",
    "default_cache_dir",
    "ensure_release",
    "recorded_params",
    "write_synthetic_release",
]

# Bump when the generator changes what it writes: cached releases are keyed on it.
GENERATOR_VERSION = 2
# Written last into a release folder: its presence means a complete release (and holds the generation parameters).
METADATA_FILENAME = "synthetic_metadata.json"


AUDIO_DIM, VIDEO_DIM = 768, 256
MODALITIES = ("audio", "video")


@dataclasses.dataclass(frozen=True)
class NonverbalPair:
    """Two intents with identical text distributions, told apart only by a non-verbal cue.

    `cued` clips carry the cue on the cue word in each of `modalities`; `plain` clips do not.
    """

    plain: str
    cued: str
    modalities: tuple[str, ...]
    cue: str  # what the cue stands for, for docs and model cards


NONVERBAL_PAIRS: tuple[NonverbalPair, ...] = (
    NonverbalPair("Praise", "Taunt", ("audio",), "mocking tone of voice on the praising word"),
    NonverbalPair("Inform", "Joke", ("video",), "smirk while saying the key word"),
    NonverbalPair("Complain", "Criticize", ("audio", "video"), "sharp tone and frown on the key word"),
)
NONVERBAL_INTENTS: tuple[str, ...] = tuple(
    label for pair in NONVERBAL_PAIRS for label in (pair.plain, pair.cued)
)

# Sizes of the real releases (rows per TSV). The out-of-scope split sizes are not documented per
# file; 5,736 in all is split like the in-scope data.
_OFFICIAL_SIZES = {
    "MIntRec": {"train": 1334, "dev": 445, "test": 445},
    "MIntRec2.0": {"train": 6165, "dev": 1106, "test": 2033},
}
_OFFICIAL_OOD_SIZES = {"train": 3801, "dev": 682, "test": 1253}

# Longest sequences of the real data, in frames (MIntRec: measured maxima; MIntRec2.0: the
# official max lengths), before `length_scale`.
_MAX_FRAMES = {"MIntRec": {"audio": 477, "video": 225}, "MIntRec2.0": {"audio": 400, "video": 180}}
_MIN_FRAMES = 4
# Seed of the cue directions: a property of the synthetic "world", not of one release.
_CUE_DIRECTION_SEED = 20250912

# ---------------------------------------------------------------------------------------------
# Text templates. "[word]" marks the cue word of a pair template (the brackets are removed).
# Slots are filled independently from _SLOTS. All lower-case, like the MIntRec transcripts.
# ---------------------------------------------------------------------------------------------
_SLOTS = {
    "name": ["glenn", "dina", "amy", "jonah", "garrett", "cheyenne", "mateo", "sandra", "zoë",
             "josé", "renée", "françois"],
    "thing": ["schedule", "display", "report", "cake", "crème brûlée", "café order", "inventory list",
              "new uniform", "presentation", "price tags", "coffee machine", "naïve little sign"],
    "place": ["the break room", "aisle five", "the parking lot", "the café", "the warehouse",
              "the office", "the front desk", "san josé"],
    "time": ["monday", "tomorrow morning", "tonight", "next week", "three o'clock", "lunch",
             "the weekend"],
}
_PREFIXES = ["well,", "okay,", "so,", "listen,", "honestly,", "um,", "{name},", "you know,", "look,"]
_SUFFIXES = [
    "you know?", "i mean it.", "right now.", "before the meeting at {time}.",
    "for the whole team, everybody here.", "and that's it.",
    "like i said yesterday in {place}.", "and {name} agrees with me on that one.",
    "because that's what \"teamwork\" means around here.",
]

_PAIR_TEMPLATES = {
    ("Praise", "Taunt"): [
        "wow, [great] job on the {thing}, {name}.",
        "oh, that's a [brilliant] idea.",
        "you really outdid yourself with the {thing}, [amazing].",
        "[nice] work, you're a natural.",
        "what a [wonderful] {thing}, i'm so impressed.",
        "look at you, the {thing} looks [perfect].",
    ],
    ("Inform", "Joke"): [
        "the {thing} is in {place}, i [swear].",
        "{name} said the {thing} is [ready] by {time}.",
        "apparently, the manager wants everyone in {place} at {time}, [seriously].",
        "so the {thing} got [delivered] to {place} today.",
        "they're [closing] {place} for the \"inspection\" on {time}.",
        "i heard {name} is [moving] to {place}.",
    ],
    ("Complain", "Criticize"): [
        "this {thing} is [terrible], nobody fixed it.",
        "why is the {thing} [always] broken?",
        "{name}, you [never] finish the {thing} on time.",
        "the way you handled the {thing} was [awful].",
        "i can't believe the {thing} is [still] like this.",
        "honestly, this is the [worst] {thing} in the store.",
    ],
}

_INTENT_TEMPLATES = {
    "Apologise": ["i'm so sorry about the {thing}.", "i apologise, it was my fault.",
                  "sorry, {name}, i didn't mean to break the {thing}.",
                  "my bad, i'm really sorry about {time}.",
                  "please forgive me, i messed up the {thing}."],
    "Thank": ["thank you so much for the {thing}.", "thanks, {name}, i really appreciate it.",
              "i'm grateful you helped with the {thing}.", "thanks a lot for covering for me at {time}."],
    "Agree": ["yes, i agree with you.", "you're right, let's do the {thing} that way.",
              "totally, that makes sense to me.", "okay, i'm on board with {name}'s plan."],
    "Flaunt": ["i got employee of the month, again.", "my new car cost more than this whole store.",
               "did i mention i won the {thing} contest?",
               "i'm kind of the best at the {thing}, everyone says so."],
    "Oppose": ["no, i don't think we should do that.", "i'm against moving the {thing} to {place}.",
               "that's not going to happen, {name}.", "absolutely not, we can't change the {thing}."],
    "Comfort": ["it's okay, don't worry about the {thing}.", "hey, it's gonna be fine, {name}.",
                "don't be so hard on yourself.", "everything will work out, i promise."],
    "Care": ["are you feeling okay, {name}?", "did you eat anything today?",
             "you look tired, take a rest in {place}.", "how's your back after moving the {thing}?"],
    "Advise": ["you should talk to {name} about the {thing}.", "maybe try restocking {place} first.",
               "if i were you, i'd ask before {time}.", "my advice is to double-check the {thing}."],
    "Arrange": ["put the {thing} in {place}, please.",
                "okay, you take {place} and i'll cover the register.",
                "let's meet in {place} at {time}.", "move the {thing} over there by {time}."],
    "Introduce": ["everyone, this is {name}, our new employee.", "{name}, meet {name}.",
                  "let me introduce you to {name} from {place}.", "this is my friend {name}, say hi."],
    "Leave": ["okay, i gotta go now.", "bye, i'm heading out to {place}.",
              "i'm leaving, see you {time}.", "well, that's my cue to go home."],
    "Prevent": ["wait, don't touch the {thing}!", "stop, you can't go into {place}.",
                "no, no, put that down before you break it.", "hold on, don't send the {thing} yet."],
    "Greet": ["hi, {name}, good morning.", "hey guys, welcome to cloud 9.",
              "hello, how are you doing?", "good to see you, {name}."],
    "Ask for help": ["can you help me with the {thing}?", "{name}, i need a hand in {place}.",
                     "could somebody please help me carry the {thing}?",
                     "i can't do this alone, please help."],
    # MIntRec2.0 only
    "Acknowledge": ["okay, got it.", "alright, i hear you, {name}.", "mm-hmm, noted.",
                    "sure, understood about the {thing}."],
    "Asking for opinions": ["what do you think about the {thing}?",
                            "{name}, should we go with this one?",
                            "how do you feel about moving to {place}?", "any thoughts on the {thing}?"],
    "Confirm": ["yes, the {thing} is confirmed for {time}.", "that's correct, it's in {place}.",
                "right, i double-checked it.", "yep, {name} confirmed it."],
    "Doubt": ["are you sure about that?", "i don't know, that sounds unlikely.",
              "really? the {thing} is in {place}?", "hmm, i'm not convinced, {name}."],
    "Emphasize": ["listen, this is really important.", "i mean it, the {thing} must be done by {time}.",
                  "i'm serious, never ever do that again.", "let me be very clear about the {thing}."],
    "Explain": ["the reason is that the {thing} was late.", "it's because {name} moved it to {place}.",
                "basically, you scan it first and then you bag it.",
                "that happened since the {thing} broke on {time}."],
    "Invite": ["do you want to join us for lunch?", "come to my party on {time}, {name}!",
               "you should come with us to {place}.", "we're having drinks at {place}, wanna come?"],
    "Plan": ["tomorrow we'll reorganise the {thing}.", "the plan is to finish {place} by {time}.",
             "next week i'm going to redo the {thing}.", "first we clean up, then we restock {place}."],
    "Refuse": ["no thanks, i'll pass.", "sorry, i can't do the {thing} for you.",
               "i won't cover your shift on {time}.", "nope, not doing that."],
    "Warn": ["be careful, the floor in {place} is wet.", "watch out, the {thing} is heavy.",
             "if you're late again, you'll be fired.", "careful, {name} is in a bad mood."],
}
# Ambiguous sentences any text-recognisable intent may use (probability `text_noise`).
_GENERIC_TEMPLATES = ["well, okay then.", "i don't know what to say.", "so, yeah.",
                      "you know what i mean?", "it is what it is.", "hmm, interesting.",
                      "that's the {thing}, i guess.", "right, {name}."]
_OUT_OF_SCOPE_TEMPLATES = ["the weather in {place} was nice.", "i watched a movie last night.",
                           "uh, what time is it?", "my cousin has a dog named {name}.",
                           "the café on main street serves crêpes now.",
                           "i think the wifi is down again.", "did anyone see my \"lucky\" pen?",
                           "the traffic near {place} was crazy {time}."]

_SLOT_PATTERN = re.compile(r"\{(\w+)\}")
_MINTREC2_SOURCES = ["superstore", "friends", "bigbang"]
_SPEAKERS = ["Glenn", "Dina", "Amy", "Jonah", "Garrett", "Cheyenne", "Mateo", "Sandra", "Zoë",
             "José", "Renée", "François"]


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------
def _choice(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _fill(rng: np.random.Generator, template: str) -> str:
    return _SLOT_PATTERN.sub(lambda match: _choice(rng, _SLOTS[match.group(1)]), template)


def _sample_sentence(rng: np.random.Generator, templates) -> tuple[list[str], int | None]:
    """Returns (words, index of the "[cue]" word or None)."""
    body = _fill(rng, _choice(rng, templates))
    prefix = _fill(rng, _choice(rng, _PREFIXES))
    suffix = _fill(rng, _choice(rng, _SUFFIXES))
    use_prefix, use_suffix = rng.random(2) < (0.35, 0.35)
    words = (prefix.split() if use_prefix else []) + body.split()
    if use_suffix:
        # attach the tail clause to the sentence ("...idea." -> "...idea, you know?")
        words[-1] = words[-1].rstrip(".!?") + ","
        words += suffix.split()
    cue_index = next((i for i, word in enumerate(words) if "[" in word), None)
    words = [word.replace("[", "").replace("]", "") for word in words]
    return words, cue_index


def _word_spans(rng: np.random.Generator, words: list[str]) -> np.ndarray:
    """(num_words, 2) clip-relative [start, end) times in [0, 1] of each word."""
    lead, trail = rng.uniform(0.02, 0.10, size=2)
    durations = np.array([len(word) + 2.0 for word in words])
    edges = lead + (1.0 - lead - trail) * np.concatenate([[0.0], np.cumsum(durations)]) / durations.sum()
    return np.stack([edges[:-1], edges[1:]], axis=1)


def _frame_segment(span: np.ndarray, num_frames: int) -> tuple[int, int]:
    """Frames [start, end) of a word spanning clip-relative times `span`: boundaries rounded to the
    nearest frame, so neighbouring words do not share frames; at least one frame."""
    start = min(int(round(span[0] * num_frames)), num_frames - 1)
    end = max(int(round(span[1] * num_frames)), start + 1)
    return start, min(end, num_frames)


def _cue_directions() -> dict[tuple[int, str], np.ndarray]:
    """Fixed unit direction per (pair index, modality), float32."""
    directions = {}
    for pair_index, pair in enumerate(NONVERBAL_PAIRS):
        for modality_index, modality in enumerate(MODALITIES):
            rng = np.random.default_rng([_CUE_DIRECTION_SEED, pair_index, modality_index])
            direction = rng.standard_normal(AUDIO_DIM if modality == "audio" else VIDEO_DIM)
            directions[pair_index, modality] = (direction / np.linalg.norm(direction)).astype(np.float32)
    return directions


@dataclasses.dataclass
class _Clip:
    label: str
    words: list[str]
    num_frames: dict[str, int]  # modality -> T
    word_spans: np.ndarray  # (num_words, 2)
    pair_index: int | None = None
    cue_word_index: int | None = None
    distractor_word_index: int | None = None  # plain clips only: the cue is put on this word instead

    @property
    def text(self) -> str:
        return " ".join(self.words)


def _canonical_sentence(rng: np.random.Generator, templates) -> tuple[list[str], int]:
    """One of the templates with every slot filled by its first option and no prefix or tail: a small, fixed set
    of sentences, each of which occurs with both intents of a pair."""
    words = _SLOT_PATTERN.sub(lambda match: _SLOTS[match.group(1)][0], _choice(rng, templates)).split()
    cue_index = next(i for i, word in enumerate(words) if "[" in word)
    return [word.replace("[", "").replace("]", "") for word in words], cue_index


def _sample_clip(rng: np.random.Generator, label: str, benchmark: str, text_noise: float,
                 distractor_rate: float, length_scale: float, vary_pair_sentences: bool = True) -> _Clip:
    pair_index = next((i for i, pair in enumerate(NONVERBAL_PAIRS) if label in (pair.plain, pair.cued)), None)
    use_generic = rng.random() < text_noise
    if pair_index is not None:
        pair = NONVERBAL_PAIRS[pair_index]
        templates = _PAIR_TEMPLATES[pair.plain, pair.cued]
        words, cue_word_index = (_sample_sentence if vary_pair_sentences else _canonical_sentence)(rng, templates)
    elif label == MINTREC2_OOS_LABEL:
        words, cue_word_index = _sample_sentence(rng, _OUT_OF_SCOPE_TEMPLATES)
    else:
        words, cue_word_index = _sample_sentence(rng, _GENERIC_TEMPLATES if use_generic else _INTENT_TEMPLATES[label])

    max_frames = _MAX_FRAMES[benchmark]
    # ~10.5 frames (0.2 s) per word at a log-normal speaking rate, plus log-normal pauses (median
    # 0.3 s, a long tail): mean ~2.5 s like the real clips (2.38 s), a few reach the real maximum.
    speech_frames = len(words) * 10.5 * rng.lognormal(0.0, 0.25)
    pause_frames = rng.lognormal(np.log(15.0), 0.8)
    audio_frames = min(speech_frames + pause_frames, max_frames["audio"])
    video_frames = min(audio_frames * rng.uniform(0.42, 0.50), max_frames["video"])
    num_frames = {
        "audio": max(_MIN_FRAMES, int(round(audio_frames * length_scale))),
        "video": max(_MIN_FRAMES, int(round(video_frames * length_scale))),
    }
    spans = _word_spans(rng, words)

    # Drawn for every clip, whatever its label: the random stream never depends on the signal.
    put_distractor = rng.random() < distractor_rate
    other_word = int(rng.integers(len(words) - 1)) if len(words) > 1 else None
    distractor_word_index = None
    if pair_index is not None and label == NONVERBAL_PAIRS[pair_index].plain and put_distractor and other_word is not None:
        distractor_word_index = other_word + (other_word >= cue_word_index)  # any word but the cue word
    if pair_index is None:
        cue_word_index = None
    return _Clip(label, words, num_frames, spans, pair_index, cue_word_index, distractor_word_index)


def _clip_features(rng: np.random.Generator, clip: _Clip, modality: str, clip_offset_std: float,
                   nonverbal_signal: float, directions) -> tuple[np.ndarray, tuple[int, int] | None]:
    """(T, D) float32 features of one modality, and the cue word's frame segment (pair clips)."""
    dim = AUDIO_DIM if modality == "audio" else VIDEO_DIM
    num_frames = clip.num_frames[modality]
    features = rng.standard_normal((num_frames, dim), dtype=np.float32)
    features += (clip_offset_std * rng.standard_normal(dim)).astype(np.float32)
    if clip.pair_index is None:
        return features, None

    cue_segment = _frame_segment(clip.word_spans[clip.cue_word_index], num_frames)
    pair = NONVERBAL_PAIRS[clip.pair_index]
    if nonverbal_signal and modality in pair.modalities:
        cue_vector = nonverbal_signal * directions[clip.pair_index, modality]  # sigma = 1
        if clip.label == pair.cued:
            features[cue_segment[0]:cue_segment[1]] += cue_vector
        elif clip.distractor_word_index is not None:
            start, end = _frame_segment(clip.word_spans[clip.distractor_word_index], num_frames)
            features[start:end] += cue_vector
    return features, cue_segment


def _balanced_labels(rng: np.random.Generator, labels, count: int) -> list[str]:
    cycled = [labels[i % len(labels)] for i in range(count)]
    return [cycled[i] for i in rng.permutation(count)]


def _timestamp(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def _write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    # Plain tab-joined lines, no quoting: texts never start with a quote nor contain tabs or
    # newlines, so csv.reader(delimiter="\t") reads them back verbatim with or without QUOTE_NONE.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        for row in [header, *rows]:
            assert not any(("\t" in field or "\n" in field) for field in row), row
            file.write("\t".join(row) + "\n")


def _write_pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        pickle.dump(obj, file, protocol=4)


def _whole_number(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _real_number(name: str, value, minimum: float, maximum: float = math.inf, minimum_allowed: bool = True) -> float:
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not is_number or value > maximum or value < minimum or (value == minimum and not minimum_allowed):
        bounds = f"{'>=' if minimum_allowed else '>'} {minimum}" + (f" and <= {maximum}" if maximum < math.inf else "")
        raise ValueError(f"{name} must be a number {bounds}, got {value!r}")
    return float(value)


def _flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _release_params(
    *, benchmark, num_train, num_dev, num_test, seed, nonverbal_signal, include_out_of_scope, num_ood_train,
    num_ood_dev, num_ood_test, length_scale, distractor_rate, text_noise, clip_offset_std, vary_pair_sentences,
) -> dict:
    """The checked, complete parameters of a release (the arguments of `write_synthetic_release`), as
    `synthetic_metadata.json` records them: split sizes resolved (None -> the official size; out-of-scope sizes 0
    when no out-of-scope data is written) and numbers normalised (3 -> 3.0), so that two calls asking for the same
    release get equal parameters. They identify a release: `ensure_release` keys its cache on them and compares
    them with the ones a folder records."""
    benchmark = normalize_benchmark(benchmark)
    official = _OFFICIAL_SIZES[benchmark]
    requested = {"train": num_train, "dev": num_dev, "test": num_test}
    # A split without rows could not be loaded: every official TSV has rows.
    sizes = {
        split: official[split] if n is None else _whole_number(f"num_{split}", n, 1) for split, n in requested.items()
    }
    writes_out_of_scope = benchmark == "MIntRec2.0" and _flag("include_out_of_scope", include_out_of_scope)
    requested_ood = {"train": num_ood_train, "dev": num_ood_dev, "test": num_ood_test}
    ood_sizes = {
        split: (_OFFICIAL_OOD_SIZES[split] if n is None else _whole_number(f"num_ood_{split}", n, 1))
        if writes_out_of_scope else 0
        for split, n in requested_ood.items()
    }
    return dict(
        benchmark=benchmark,
        sizes=sizes,
        ood_sizes=ood_sizes,
        seed=_whole_number("seed", seed, 0),
        nonverbal_signal=_real_number("nonverbal_signal", nonverbal_signal, 0.0),
        length_scale=_real_number("length_scale", length_scale, 0.0, minimum_allowed=False),
        distractor_rate=_real_number("distractor_rate", distractor_rate, 0.0, 1.0),
        text_noise=_real_number("text_noise", text_noise, 0.0, 1.0),
        clip_offset_std=_real_number("clip_offset_std", clip_offset_std, 0.0),
        vary_pair_sentences=_flag("vary_pair_sentences", vary_pair_sentences),
        generator_version=GENERATOR_VERSION,
    )


def write_synthetic_release(
    out_dir: str | os.PathLike,
    benchmark: str = "MIntRec",
    num_train: int | None = None,
    num_dev: int | None = None,
    num_test: int | None = None,
    seed: int = 0,
    nonverbal_signal: float = 1.0,
    include_out_of_scope: bool = True,
    num_ood_train: int | None = None,
    num_ood_dev: int | None = None,
    num_ood_test: int | None = None,
    length_scale: float = 1.0,
    distractor_rate: float = 0.5,
    text_noise: float = 0.1,
    clip_offset_std: float = 1.0,
    vary_pair_sentences: bool = True,
) -> Path:
    """Writes a synthetic release in the official layout into `out_dir` and returns `Path(out_dir)`.

    Args:
        out_dir: the release folder to write. It must be missing, empty, or a synthetic release this
            function wrote (complete or interrupted), which is then rewritten; any other folder -- a real
            MIntRec release, say -- raises `FileExistsError` and is left untouched. It is what a loader
            takes as `data_dir`.
        benchmark: "MIntRec" (20 intents) or "MIntRec2.0" (30 intents + out-of-scope).
        num_train, num_dev, num_test: rows per split; default to the real release sizes
            (MIntRec 1,334 / 445 / 445; MIntRec2.0 6,165 / 1,106 / 2,033 -- the full MIntRec2.0
            size is about 10 GB of features, so pass smaller numbers unless that is wanted).
        seed: seeds everything except the cue directions (fixed for all releases).
        nonverbal_signal: cue amplitude in noise standard deviations (see the module docstring);
            0 removes the cue.
        include_out_of_scope: MIntRec2.0 only: also write `out-of-scope/MIntRec2.0-OOD/`.
        num_ood_train, num_ood_dev, num_ood_test: out-of-scope rows per split (default 3,801 /
            682 / 1,253, i.e. the real 5,736 split like the in-scope data).
        length_scale: multiplies every clip's frame counts (< 1 for small, fast test data).
        distractor_rate: probability that a plain clip of a pair carries the cue on another word.
        text_noise: probability that a non-paired example uses a generic, ambiguous sentence.
        clip_offset_std: std of the per-clip feature offset, in noise standard deviations.
        vary_pair_sentences: True fills the pair templates' slots at random and adds random prefixes and tails,
            so nearly every paired utterance is a new sentence; False uses 6 fixed sentences per pair, each
            occurring with both intents. With few training clips a model can memorise varied sentences
            (and fit the training labels without the cue); fixed ones leave the cue as the only way to fit.

    `synthetic_metadata.json` is written last: its presence means the release is complete.
    """
    params = _release_params(
        benchmark=benchmark, num_train=num_train, num_dev=num_dev, num_test=num_test, seed=seed,
        nonverbal_signal=nonverbal_signal, include_out_of_scope=include_out_of_scope, num_ood_train=num_ood_train,
        num_ood_dev=num_ood_dev, num_ood_test=num_ood_test, length_scale=length_scale,
        distractor_rate=distractor_rate, text_noise=text_noise, clip_offset_std=clip_offset_std,
        vary_pair_sentences=vary_pair_sentences,
    )
    release_dir = Path(out_dir)
    _check_writable_release_dir(release_dir)  # before any work: nothing in a foreign folder is touched
    benchmark, sizes, ood_sizes = params["benchmark"], params["sizes"], params["ood_sizes"]
    seed, nonverbal_signal, length_scale = params["seed"], params["nonverbal_signal"], params["length_scale"]
    distractor_rate, text_noise = params["distractor_rate"], params["text_noise"]
    clip_offset_std, vary_pair_sentences = params["clip_offset_std"], params["vary_pair_sentences"]
    is_mintrec2 = benchmark == "MIntRec2.0"
    include_out_of_scope = is_mintrec2 and include_out_of_scope
    labels = MINTREC2_LABELS if is_mintrec2 else MINTREC_LABELS

    directions = _cue_directions()
    root_seed = np.random.SeedSequence(seed)
    split_seeds = dict(zip(sizes, root_seed.spawn(len(sizes))))
    cue_metadata = {}
    audio_pickles = {"in": {}, "ood": {}}
    video_pickles = {"in": {}, "ood": {}}
    tsv_rows = {"in": {}, "ood": {}}
    id_rng = np.random.default_rng(root_seed.spawn(1)[0])
    # MIntRec ids: distinct (season, episode, clip) triples over all splits.
    total = sum(sizes.values())
    triples = id_rng.choice(6 * 22 * 1000, size=total, replace=False) if not is_mintrec2 else None
    next_dialogue, next_triple = 0, 0
    dialogue_id = source = None

    for split, size in sizes.items():
        text_rng, feature_rng = (np.random.default_rng(s) for s in split_seeds[split].spawn(2))
        split_labels = _balanced_labels(text_rng, labels, size)
        if is_mintrec2:
            # Out-of-scope utterances are interleaved with in-scope ones in the same dialogues.
            split_labels += [MINTREC2_OOS_LABEL] * ood_sizes[split]
            split_labels = [split_labels[i] for i in text_rng.permutation(len(split_labels))]
        utterance_id, dialogue_size, clock = -1, 0, 0.0  # no dialogue spans two splits
        for label in split_labels:
            clip = _sample_clip(text_rng, label, benchmark, text_noise, distractor_rate, length_scale, vary_pair_sentences)
            audio, cue_audio = _clip_features(feature_rng, clip, "audio", clip_offset_std, nonverbal_signal, directions)
            video, cue_video = _clip_features(feature_rng, clip, "video", clip_offset_std, nonverbal_signal, directions)
            scope = "ood" if label == MINTREC2_OOS_LABEL else "in"
            if is_mintrec2:
                # Dialogues of 2-8 utterances, consecutive in time.
                if utterance_id + 1 >= dialogue_size:
                    dialogue_id, utterance_id = next_dialogue, 0
                    next_dialogue += 1
                    dialogue_size = int(text_rng.integers(2, 9))
                    source = _choice(text_rng, _MINTREC2_SOURCES)
                    clock = float(text_rng.uniform(0.5, 30.0))
                else:
                    utterance_id += 1
                duration = clip.num_frames["audio"] / length_scale / 50.0  # WavLM: 50 frames / s
                start, clock = clock, clock + duration
                clock += float(text_rng.uniform(0.2, 1.5))
                sample_id = f"dia{dialogue_id}_utt{utterance_id}"
                tsv_rows[scope].setdefault(split, []).append([
                    str(dialogue_id), str(utterance_id), clip.text, label, _timestamp(start),
                    _timestamp(start + duration), source, _choice(text_rng, _SPEAKERS)])
                # In-scope video is stored as (T, 1, 256), out-of-scope as (T, 256): both occur.
                video_pickles[scope][sample_id] = video[:, None, :] if scope == "in" else video
            else:
                code = int(triples[next_triple])
                next_triple += 1
                season, episode, clip_number = code // 22000 + 1, (code // 1000) % 22 + 1, code % 1000
                sample_id = f"S{season:02d}_E{episode:02d}_{clip_number}"
                tsv_rows[scope].setdefault(split, []).append(
                    [f"S{season:02d}", f"E{episode:02d}", str(clip_number), clip.text, label])
                # Official MIntRec video: a list of per-key-frame (1, 256) arrays.
                video_pickles[scope][sample_id] = list(video[:, None, :])
            audio_pickles[scope][sample_id] = audio
            if clip.pair_index is not None:
                pair = NONVERBAL_PAIRS[clip.pair_index]
                cue_metadata[sample_id] = {
                    "pair": [pair.plain, pair.cued],
                    "cue_modalities": list(pair.modalities),
                    "cue_on_cue_word": bool(nonverbal_signal) and label == pair.cued,
                    "cue_word_index": clip.cue_word_index,
                    "cue_word": clip.words[clip.cue_word_index],
                    "audio_segment": list(cue_audio),
                    "video_segment": list(cue_video),
                    "distractor_word_index": clip.distractor_word_index if nonverbal_signal else None,
                }

    release_dir.mkdir(parents=True, exist_ok=True)
    # From here on the folder is ours: the marker says so (and that the release is incomplete) until the metadata
    # file, which marks a complete release, replaces it.
    (release_dir / _WRITING_MARKER).write_text("written by datasets_scripts.synthetic\n", encoding="utf-8")
    (release_dir / METADATA_FILENAME).unlink(missing_ok=True)
    if is_mintrec2:
        header = ["Dialogue_id", "Utterance_id", "Text", "Label", "Start_timestamp", "End_timestamp",
                  "Source", "speakername"]
        folders = {"in": release_dir / "in-scope"}
        if include_out_of_scope:
            folders["ood"] = release_dir / "out-of-scope" / "MIntRec2.0-OOD"
        for scope, folder in folders.items():
            for split in sizes:
                _write_tsv(folder / f"{split}.tsv", header, tsv_rows[scope].get(split, []))
            _write_pickle(folder / "video_data" / "swin_roi_binary.pkl", video_pickles[scope])
            _write_pickle(folder / "audio_data" / "wavlm_feats_binary.pkl", audio_pickles[scope])
    else:
        for split in sizes:
            _write_tsv(release_dir / f"{split}.tsv", ["season", "episode", "clip", "text", "label"],
                       tsv_rows["in"].get(split, []))
        _write_pickle(release_dir / "video_data" / "video_feats.pkl", video_pickles["in"])
        _write_pickle(release_dir / "audio_data" / "audio_feats.pkl", audio_pickles["in"])

    metadata = {
        "generator": "datasets_scripts.synthetic",
        "params": params,
        "nonverbal_pairs": [dataclasses.asdict(pair) for pair in NONVERBAL_PAIRS],
        "cues": cue_metadata,
    }
    with open(release_dir / METADATA_FILENAME, "w", encoding="utf-8") as file:
        json.dump(metadata, file, ensure_ascii=False, indent=1)
    (release_dir / _WRITING_MARKER).unlink()
    return release_dir


# Present while `write_synthetic_release` writes a folder; an interrupted write leaves it, so the folder is still
# recognised as the generator's own and may be rewritten.
_WRITING_MARKER = ".synthetic_release_incomplete"


def _check_writable_release_dir(release_dir: Path) -> None:
    """Refuses to write into a folder that holds anything but a synthetic release of this generator: the files of a
    real release (or anything else) there must never be overwritten."""
    if not release_dir.exists():
        return
    if not release_dir.is_dir():
        raise FileExistsError(f"{release_dir} is a file, not a folder: a synthetic release needs a folder.")
    entries = sorted(entry.name for entry in release_dir.iterdir())
    if not entries or METADATA_FILENAME in entries or _WRITING_MARKER in entries:
        return
    shown = ", ".join(entries[:8]) + (f", ... ({len(entries)} entries)" if len(entries) > 8 else "")
    raise FileExistsError(
        f"{release_dir} is not empty and holds no synthetic release (found: {shown}). A synthetic release is only "
        "written into a missing or empty folder, or over one written by this generator (synthetic_metadata.json "
        "present); choose another folder."
    )


# ---------------------------------------------------------------------------------------------
# The built-in releases, and the one way to find or write a release
# ---------------------------------------------------------------------------------------------
# The built-in releases are "minimal pairs": each pair intent uses 6 fixed sentences, each said both plainly and with
# the cue on its key word (vary_pair_sentences=False), so the cue is the only way to tell the two intents apart and a
# model cannot fit them by memorising sentences. The cue is strong (16 noise standard deviations per frame on the key
# word) and clean (no per-clip offset, no distractors), so that a small model learns it within a few CPU minutes;
# offsets and distractors, which make the task harder, remain parameters. Clips are a third of the real length
# (MIntRec: audio <= 159 frames, video <= 75). MIntRec: 20 intents x 60 training clips. MIntRec2.0: 30 intents x 30
# training clips, plus out-of-scope clips.
DEFAULT_RELEASE_PARAMS = {
    "MIntRec": dict(
        num_train=1200, num_dev=300, num_test=400, seed=0, nonverbal_signal=16.0, length_scale=1 / 3,
        clip_offset_std=0.0, distractor_rate=0.0, vary_pair_sentences=False,
    ),
    "MIntRec2.0": dict(
        num_train=900, num_dev=300, num_test=300, num_ood_train=300, num_ood_dev=100, num_ood_test=300,
        seed=0, nonverbal_signal=16.0, length_scale=1 / 3, clip_offset_std=0.0, distractor_rate=0.0,
        vary_pair_sentences=False,
    ),
}


class SyntheticReleaseMismatchError(FileExistsError):
    """A folder holds a complete synthetic release written with other parameters than the ones asked for. It is a
    FileExistsError because the folder is not written over: the release there is left as it is."""


def default_cache_dir() -> Path:
    """Where `ensure_release` keeps releases that have no `data_dir`: `$DYKEN_CACHE`, else ~/.cache/dyken-hyena."""
    return Path(os.environ.get("DYKEN_CACHE") or Path.home() / ".cache" / "dyken-hyena").expanduser()


def ensure_release(
    benchmark: str = "MIntRec",
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    **overrides,
) -> Path:
    """Returns the folder of the synthetic release with the given parameters, writing it when it is missing.

    The parameters are the built-in ones of the benchmark (`DEFAULT_RELEASE_PARAMS[benchmark]`) updated by
    `overrides`, which may be any argument of `write_synthetic_release` but `out_dir` and `benchmark`.

        ensure_release()                                      # the built-in MIntRec release
        ensure_release("MIntRec2.0")                          # the built-in MIntRec2.0 release
        ensure_release("MIntRec", nonverbal_signal=0.0)       # its twin without the non-verbal cue
        ensure_release("MIntRec", data_dir="data/synthetic")  # the built-in release, in that folder

    Without `data_dir` the release lives in the cache (`cache_dir`, else `default_cache_dir()`), in the folder
    `synthetic-<benchmark>-<hash>` where the hash covers every parameter and the generator version, so other
    parameters or a changed generator never reuse stale files. It is written into a staging folder and renamed into
    place, so processes that ask for the same release at the same time never see a half-written one.

    With `data_dir`, the release is that folder:
      - a complete synthetic release written with these parameters is used as it is;
      - one written with other parameters raises `SyntheticReleaseMismatchError` naming them (to read such a
        release as it is, load the folder itself, e.g. `load_any(folder)`);
      - a missing or empty folder, or one left incomplete by an interrupted write, is (re)written;
      - a folder holding anything else -- a real release, say -- raises `FileExistsError` and is left untouched.

    Raises:
        TypeError: an override that is not a parameter of the generator.
        ValueError: an unknown benchmark or an invalid parameter value.
    """
    benchmark = normalize_benchmark(benchmark)
    # The generator's own defaults, for the parameters neither the built-in release nor the caller sets.
    generator_defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(write_synthetic_release).parameters.items()
        if name not in ("out_dir", "benchmark")
    }
    unknown = sorted(set(overrides) - set(generator_defaults))
    if unknown:
        raise TypeError(
            f"ensure_release() got unknown release parameter(s) {', '.join(unknown)}; the parameters are: "
            f"{', '.join(generator_defaults)}"
        )
    arguments = {**generator_defaults, **DEFAULT_RELEASE_PARAMS[benchmark], **overrides, "benchmark": benchmark}
    params = _release_params(**arguments)
    if data_dir is not None:
        return _ensure_release_in_folder(Path(data_dir).expanduser(), arguments, params)
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return _ensure_cached_release(cache_dir, arguments, params)


def _ensure_cached_release(cache_dir: Path, arguments: dict, params: dict) -> Path:
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    release_dir = cache_dir / f"synthetic-{params['benchmark'].lower()}-{digest}"
    if (release_dir / METADATA_FILENAME).is_file():
        return release_dir
    if release_dir.exists():
        raise FileExistsError(
            f"{release_dir} is in the synthetic release cache but holds no complete release ({METADATA_FILENAME} "
            "is missing): it was not written by ensure_release. Remove it and try again."
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{release_dir.name}-", dir=cache_dir))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the cache is an ordinary folder
    try:
        write_synthetic_release(staging, **arguments)
        try:
            os.rename(staging, release_dir)
        except OSError:
            # Another process finished the same release first (the target exists): use its copy.
            if not (release_dir / METADATA_FILENAME).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return release_dir


def _ensure_release_in_folder(release_dir: Path, arguments: dict, params: dict) -> Path:
    metadata_file = release_dir / METADATA_FILENAME
    if not metadata_file.is_file():
        # Missing, empty or our own interrupted write: written. Anything else: FileExistsError, nothing touched.
        return write_synthetic_release(release_dir, **arguments)
    recorded = recorded_params(release_dir)
    differences = _differences(recorded, params)
    if differences:
        raise SyntheticReleaseMismatchError(
            f"{release_dir} holds a synthetic release written with other parameters than the ones asked for ("
            + "; ".join(differences)
            + "). It is not written over. To read that release as it is, load the folder itself (load_any(folder), "
            "or the folder as the trainer's --dataset); to get the requested one, choose another data_dir or none "
            "(the cache)."
        )
    return release_dir


def recorded_params(release_dir: str | os.PathLike) -> dict:
    """The generation parameters a synthetic release records in its synthetic_metadata.json."""
    metadata_file = Path(release_dir) / METADATA_FILENAME
    try:
        params = json.loads(metadata_file.read_text(encoding="utf-8"))["params"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{metadata_file}: could not read the release's generation parameters ({type(error).__name__}: {error}); "
            "expected the JSON object written by datasets_scripts.synthetic, with a 'params' object"
        ) from None
    if not isinstance(params, dict):
        raise ValueError(f"{metadata_file}: 'params' is a {type(params).__name__}; expected an object")
    return params


def _differences(recorded: dict, requested: dict, prefix: str = "") -> list[str]:
    """'name: X in the folder, Y requested' for each parameter that differs (nested ones as sizes.train)."""
    differences = []
    for name in sorted(set(recorded) | set(requested)):
        here, wanted = recorded.get(name, "missing"), requested.get(name, "missing")
        if isinstance(here, dict) and isinstance(wanted, dict):
            differences += _differences(here, wanted, f"{prefix}{name}.")
        elif here != wanted:
            differences.append(f"{prefix}{name}: {here!r} in the folder, {wanted!r} requested")
    return differences
