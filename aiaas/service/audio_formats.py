"""Speech output in the formats of OpenAI's ``/v1/audio/speech``: wav as synthesized; mp3, opus (Ogg), aac
(ADTS), flac and pcm (raw 16-bit little-endian mono at 24 kHz, as OpenAI's) encoded by ffmpeg (Debian package
``ffmpeg``, a kept encoder; run as a child process with pipes, nothing written to disk)."""

from __future__ import annotations

import shutil
import subprocess

from aiaas.errors import InvalidInput

# format -> (ffmpeg output arguments, media type)
FORMATS: dict[str, tuple[list[str], str]] = {
    "mp3": (["-f", "mp3", "-c:a", "libmp3lame", "-q:a", "4"], "audio/mpeg"),
    "opus": (["-f", "ogg", "-c:a", "libopus", "-b:a", "48k"], "audio/ogg"),
    "aac": (["-f", "adts", "-c:a", "aac", "-b:a", "96k"], "audio/aac"),
    "flac": (["-f", "flac", "-c:a", "flac"], "audio/flac"),
    "pcm": (["-f", "s16le", "-ac", "1", "-ar", "24000"], "audio/pcm"),
}
NAMES = ("wav", *FORMATS)


def check_format(fmt: str) -> None:
    if fmt != "wav" and fmt not in FORMATS:
        raise InvalidInput(
            f"response_format {fmt!r} is not supported; use one of {', '.join(NAMES)}", param="response_format"
        )
    if fmt != "wav" and shutil.which("ffmpeg") is None:
        raise InvalidInput(
            f"response_format {fmt!r} needs ffmpeg on the server (apt-get install ffmpeg); wav works without it",
            param="response_format",
        )


def media_type(fmt: str) -> str:
    return "audio/wav" if fmt == "wav" else FORMATS[fmt][1]


def encode(wav: bytes, fmt: str, timeout_s: float = 60.0) -> bytes:
    """``wav`` re-encoded as ``fmt`` (blocking: run it in a thread)."""
    if fmt == "wav":
        return wav
    args, _ = FORMATS[fmt]
    proc = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", "pipe:0", *args, "pipe:1"],
        input=wav,
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout:
        raise InvalidInput(f"could not encode the speech as {fmt}: {proc.stderr.decode(errors='replace')[:200]}")
    return proc.stdout
