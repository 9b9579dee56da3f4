"""WAV in and out for the speech models: decode any PCM/float WAV, mix to mono, resample, encode 16-bit PCM.

Clients send ``audio`` (raw WAV bytes, binary extension or tritonclient) or ``audio_b64`` (base64 text, for
JSON/curl clients); exactly one of the two must be present. Everything here is numpy only.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import wave

import numpy as np

from aiaas.errors import InvalidInput

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """(mono float32 samples in [-1, 1], sample rate) of a RIFF/WAVE file: 8/16/24/32-bit PCM or 32/64-bit
    float, any channel count. Raises InvalidInput with the reason for anything else."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidInput("audio must be a WAV file (RIFF/WAVE header not found)")
    pos, fmt, payload = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            if len(body) < 16:
                raise InvalidInput("WAV fmt chunk is truncated")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack_from("<H", body, 24)[0]  # first two bytes of the SubFormat GUID
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            payload = body
            break
        pos += 8 + size + (size & 1)
    if fmt is None or payload is None:
        raise InvalidInput("WAV file has no fmt or data chunk")
    tag, channels, rate, bits = fmt
    if channels < 1 or rate < 1000 or rate > 384_000:
        raise InvalidInput(f"WAV has {channels} channels at {rate} Hz: not audio this model can use")
    width = bits // 8
    usable = len(payload) - len(payload) % (width * channels) if width else 0
    raw = payload[:usable]
    if tag == _PCM and bits == 8:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == _PCM and bits == 16:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif tag == _PCM and bits == 24:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v)).astype(np.float32) / float(1 << 23)
    elif tag == _PCM and bits == 32:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / float(1 << 31)
    elif tag == _FLOAT and bits in (32, 64):
        x = np.nan_to_num(np.frombuffer(raw, "<f4" if bits == 32 else "<f8").astype(np.float32))
    else:
        raise InvalidInput(f"unsupported WAV encoding (format tag {tag}, {bits} bits); send PCM or float WAV")
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    return np.clip(x, -1.0, 1.0).astype(np.float32), int(rate)


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Band-limited resampling by FFT (exact for periodic signals, good enough for speech front ends)."""
    if src == dst or len(x) == 0:
        return x.astype(np.float32)
    n_out = max(1, round(len(x) * dst / src))
    spec = np.fft.rfft(x.astype(np.float64))
    keep = min(len(spec), n_out // 2 + 1)
    out = np.zeros(n_out // 2 + 1, dtype=np.complex128)
    out[:keep] = spec[:keep]
    y = np.fft.irfft(out, n=n_out) * (n_out / len(x))
    return y.astype(np.float32)


def write_wav(x: np.ndarray, rate: int) -> bytes:
    """16-bit PCM mono WAV bytes of float samples in [-1, 1]."""
    pcm = (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def audio_rows(inputs: dict[str, np.ndarray]) -> list[bytes]:
    """The WAV bytes of each row, from ``audio`` (raw) or ``audio_b64`` (base64 text): exactly one of them."""
    given = [n for n in ("audio", "audio_b64") if n in inputs]
    if len(given) != 1:
        raise InvalidInput(
            "send exactly one of 'audio' (WAV bytes) or 'audio_b64' (base64 of WAV bytes)"
            + ("; got both" if len(given) == 2 else "")
        )
    rows = []
    for i, v in enumerate(np.asarray(inputs[given[0]], dtype=object).reshape(-1)):
        b = v.encode("ascii", "ignore") if isinstance(v, str) else bytes(v)
        if given[0] == "audio_b64":
            try:
                b = base64.b64decode(b, validate=False)
            except (binascii.Error, ValueError):
                raise InvalidInput(f"audio_b64 row {i} is not valid base64") from None
        rows.append(b)
    return rows


def load_audio(data: bytes, rate: int, max_seconds: float) -> np.ndarray:
    """Mono float32 samples at ``rate`` Hz; refuses audio longer than ``max_seconds`` before resampling it."""
    x, src = read_wav(data)
    seconds = len(x) / src
    if seconds > max_seconds:
        raise InvalidInput(f"audio is {seconds:.1f}s long; this model accepts at most {max_seconds:g}s per row")
    return resample(x, src, rate)
