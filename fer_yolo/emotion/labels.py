"""Emotion labels: the one place that defines them and the keys they travel under."""

from __future__ import annotations

#: The 7 FER2013 emotions, in FER2013 order: class id i is EMOTIONS[i].
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Other spellings found in datasets (FER+, AffectNet-style folders), mapped onto EMOTIONS.
ALIASES: dict[str, str] = {
    "anger": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "scared": "fear",
    "happiness": "happy",
    "sadness": "sad",
    "surprised": "surprise",
    "calm": "neutral",
}

#: sv.Detections.data key of the (n, 7) float32 emotion probabilities.
EMOTION_PROBS_KEY = "emotion_probs"
#: sv.Detections.data key of the (n,) emotion names.
EMOTION_KEY = "emotion"


def emotion_id(name: str) -> int | None:
    """Class id of an emotion name (case-insensitive, aliases accepted), or None if unknown.

    Example:
        >>> emotion_id("Happiness")
        3
    """
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return EMOTIONS.index(key) if key in EMOTIONS else None
