"""Speed: fingerprinting as a multiple of realtime at 480p, 720p and 1080p (decode included), for this project and
the peers in the same run, plus the time to align two 1-hour fingerprints and the fingerprint size.

Usage: ``.venv/bin/python bench/video/speed.py`` (after ``build.py``). The clips are real footage and a real
photo slideshow (``src02`` + ``src05``, 70 s), scaled to 854x480, 1280x720 and 1920x1080 at 30 fps and encoded
with libx264 ``-preset fast -crf 23`` (B-frames, as distributed video usually has). Each timing is the best of
two runs, one method after another on the same file; ``uptime`` is printed before and after, since other jobs
share the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import peers  # noqa: E402
from run import CACHE, DATA, media  # noqa: E402

from shared.kinds.video import KIND, VideoFingerprint  # noqa: E402
from shared.kinds.video.frames import HASH_BITS  # noqa: E402
from shared.settings import Settings  # noqa: E402

SIZES = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}


def clip(label: str) -> Path:
    w, h = SIZES[label]
    out = DATA / "speed" / f"speed_{label}.mp4"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    a, b = DATA / "sources" / "src02_real.mp4", DATA / "sources" / "src05_slides.mp4"
    graph = f"[0:v][0:a][1:v][1:a]concat=n=2:v=1:a=1[v][a];[v]scale={w}:{h},fps=30,format=yuv420p[vo]"
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-v",
            "error",
            "-i",
            str(a),
            "-i",
            str(b),
            "-filter_complex",
            graph,
            "-map",
            "[vo]",
            "-map",
            "[a]",
            "-c:v",
            "libx264",
            "-preset",
            "fast",
            "-crf",
            "23",
            "-c:a",
            "aac",
            str(out),
        ],
        check=True,
    )
    return out


def best_of(fn, n: int = 2) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def one_hour_pair(seed: int = 3, shared: bool = True) -> tuple[VideoFingerprint, VideoFingerprint]:
    """Two synthetic 1-hour fingerprints (2 samples/s): shots of 2-10 s whose hashes drift a few bits per
    sample; the target replays 20 minutes of the source (re-noised) amid its own footage. With ``shared``
    false they share nothing: the slower case, where ``compare`` also runs its crop rescue."""
    rng = np.random.default_rng(seed)

    def footage(n: int) -> np.ndarray:
        rows = np.empty((n, HASH_BITS), bool)
        k = 0
        while k < n:
            shot = int(rng.integers(4, 21))
            base = rng.random(HASH_BITS) < 0.5
            for s in range(min(shot, n - k)):
                base = base ^ (rng.random(HASH_BITS) < 0.02)
                rows[k + s] = base
            k += shot
        return rows

    n = 7200
    src = footage(n)
    tgt = footage(n)
    if shared:
        tgt[1800:4200] = src[3000:5400] ^ (rng.random((2400, HASH_BITS)) < 0.04)
    a = VideoFingerprint(np.packbits(src, axis=1), float(n / 2), 30.0, 2.0)
    b = VideoFingerprint(np.packbits(tgt, axis=1), float(n / 2), 30.0, 2.0)
    return a, b


def main() -> None:
    out: dict[str, object] = {"uptime_before": os.popen("uptime").read().strip(), "nproc": os.cpu_count()}
    visual = Settings()
    visual = replace(visual, video=replace(visual.video, audio_similarity=False))
    full = Settings()
    rows = {}
    for label in SIZES:
        path = clip(label)
        m = media(str(path))
        duration = KIND.fingerprint(m, visual).duration_s
        rows[label] = {
            "duration_s": round(duration, 2),
            "ours_visual": duration / best_of(lambda m=m: KIND.fingerprint(m, visual)),
            "ours_with_audio": duration / best_of(lambda m=m: KIND.fingerprint(m, full)),
            "vpdq_1fps": duration / best_of(lambda p=path: peers.vpdq_hashes(str(p))),
            "ffmpeg_signature": duration / best_of(lambda p=path: peers.signature_extract(str(p))),
        }
        print(label, {k: round(v, 1) for k, v in rows[label].items()})
    out["realtime_multiple"] = rows
    a, b = one_hour_pair()
    KIND.compare(a, b, full)  # warm-up
    align_s = best_of(lambda: KIND.compare(a, b, full), 3)
    match = KIND.compare(a, b, full)
    out["align_1h_vs_1h_s"] = align_s
    out["align_1h_segments"] = [s.to_json() for s in match.segments]
    a, c = one_hour_pair(shared=False)
    out["align_1h_vs_1h_unrelated_s"] = best_of(lambda: KIND.compare(a, c, full), 3)
    out["align_1h_unrelated_score"] = KIND.compare(a, c, full).similarity_score
    out["uptime_after"] = os.popen("uptime").read().strip()
    print(json.dumps({k: v for k, v in out.items() if k != "realtime_multiple"}, indent=1))
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "speed.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
