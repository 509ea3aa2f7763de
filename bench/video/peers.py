"""The two peers, run exactly as their users would: a vPDQ-style bag of PDQ hashes, and FFmpeg's ``signature``.

vPDQ-style (facebook/ThreatExchange ``vpdq``): PDQ (``pdqhash``) of one frame per second (the first frame at or
after each whole second), frames of quality < 50 dropped, duplicate hashes dropped; a query hash "matches" when
some hash of the other video is within 31 bits; the pair matches when at least 80% of the query's hashes and
80% of the target's hashes match (vPDQ's ``is_similar`` with its defaults). No timestamps: a match is scored
by the VCSL metric as one box covering both whole videos.

FFmpeg ``signature`` (MPEG-7 video signature, Debian's ffmpeg 5.1): both inputs in one filter graph with
``detectmode=full``; the filter logs one start point per side and the number of matching frames. We turn that
into one box ``[start, start + frames / 25]`` on each side (25 fps is the sources' rate), which is more than the
filter claims (it reports no end).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import av
import numpy as np
import pdqhash

PDQ_MAX_BITS = 31
PDQ_MIN_QUALITY = 50
VPDQ_MATCH_PERCENT = 80.0


def vpdq_hashes(path: str) -> tuple[np.ndarray, float]:
    """(K, 256) bool PDQ hashes at 1 fps with quality >= 50, deduplicated; and the duration in seconds."""
    hashes, next_s, last_t = [], 0.0, 0.0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            t = float(frame.time or 0.0)
            last_t = max(last_t, t)
            if t + 1e-6 < next_s:
                continue
            next_s = np.floor(t) + 1.0
            bits, quality = pdqhash.compute(frame.to_ndarray(format="rgb24"))
            if quality >= PDQ_MIN_QUALITY:
                hashes.append(bits.astype(bool))
    if not hashes:
        return np.zeros((0, 256), bool), last_t
    return np.unique(np.array(hashes), axis=0), last_t


def cached_vpdq_hashes(files: list[str], cache: Path) -> dict[str, tuple[np.ndarray, float]]:
    """``vpdq_hashes`` of each file, kept in a JSON cache: path -> (bits, duration in seconds)."""
    known = json.loads(cache.read_text()) if cache.exists() else {}
    out = {}
    for f in files:
        if f not in known:
            h, d = vpdq_hashes(f)
            known[f] = {"hashes": np.packbits(h, axis=1).tolist() if len(h) else [], "duration": d}
        raw = np.array(known[f]["hashes"], np.uint8).reshape(-1, 32)
        out[f] = (np.unpackbits(raw, axis=1).astype(bool), float(known[f]["duration"]))
    cache.write_text(json.dumps(known))
    return out


def vpdq_match(a: np.ndarray, b: np.ndarray) -> tuple[bool, float, float]:
    """vPDQ's brute-force match: (is_similar, query match %, target match %)."""
    if len(a) == 0 or len(b) == 0:
        return False, 0.0, 0.0
    dist = (a[:, None, :] != b[None, :, :]).sum(axis=2)
    close = dist <= PDQ_MAX_BITS
    qa = 100.0 * close.any(axis=1).mean()
    qb = 100.0 * close.any(axis=0).mean()
    return bool(qa >= VPDQ_MATCH_PERCENT and qb >= VPDQ_MATCH_PERCENT), float(qa), float(qb)


_MATCH = re.compile(r"matching of video 0 at ([\d.]+) and 1 at ([\d.]+), (\d+) frames matching")


def signature_match(a: str, b: str, fps: float = 25.0) -> tuple[bool, list[list[float]]]:
    """Run FFmpeg's signature filter on a pair; (matched, [box]) with box = [a_start, b_start, a_end, b_end]."""
    graph = "[0:v][1:v]signature=nb_inputs=2:detectmode=full"
    done = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-i", a, "-i", b, "-filter_complex", graph, "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    m = _MATCH.search(done.stderr)
    if not m:
        return False, []
    sa, sb, frames = float(m.group(1)), float(m.group(2)), int(m.group(3))
    return True, [[sa, sb, sa + frames / fps, sb + frames / fps]]


def signature_extract(path: str) -> None:
    """Compute (and discard) the signature of one file: the cost of fingerprinting with the filter."""
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostats",
            "-v",
            "error",
            "-i",
            path,
            "-vf",
            "signature",
            "-f",
            "null",
            "-",
        ],
        check=True,
    )
