"""WAV files: recognising one, and how long it plays (the stdlib ``wave`` module)."""

from __future__ import annotations

import wave
from pathlib import Path


def looks_like_wav(head: bytes) -> bool:
    """A RIFF container of WAVE data, by its first 12 bytes."""
    return len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE"


def wav_duration(path: Path) -> float:
    """Seconds of audio in the WAV file at ``path``; ValueError if it is not a PCM WAV."""
    try:
        with wave.open(str(path), "rb") as wav:
            frames, rate = wav.getnframes(), wav.getframerate()
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"{path.name} is not a readable WAV file: {exc}") from exc
    if rate <= 0:
        raise ValueError(f"{path.name} has no frame rate")
    return frames / rate
