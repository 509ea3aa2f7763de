"""Run the audio benchmark: mediamatch and Chromaprint on the same pairs, in the same run.

Usage (after ``build_set.py``)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/audio/run.py [--split eval|tune|fresh] [--tag T]

Settings come from the environment like the service's (``MEDIAMATCH_AUDIO_MIN_CONTINUED_SHARE=0.2`` tries
another value); ``--tag`` names such a trial's rows file so the default run's stays.

Stages: decode every file once with mediamatch's own streamed decoder (cached as 8 kHz PCM under
``bench/cache/audio``, with the decode time), fingerprint it (cached with its time, keyed by the fingerprint code),
``fpcalc -raw`` it (cached), then compare every pair with both methods and print the tables that
``REPORT.md`` quotes (also written to ``bench/cache/audio/<split>_tables.md`` with per-pair rows as JSON).

- Positives: (source track, target with a transformed excerpt). A hit needs ``match`` (mediamatch: the
  envelope rule, score >= the default threshold and a segment of at least ``min_segment_s`` left) and a
  segment whose source and target starts are both within 0.5 s of the truth.
- Negatives: each target against 3 other sources of the same split (2 from the excerpt's own group when
  it has them: same soundtrack, same genre, same speakers), every pair of sources within a group, and the
  degenerate signals (silence, tones, white and pink noise, clicks) against each other and everything.
- Chromaprint decides ``count >= threshold`` with the threshold calibrated on the tuning split (the
  smallest count above every tuning negative).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import chromaprint  # noqa: E402

from shared.kinds.audio import KIND, AudioFingerprint, fingerprint_samples  # noqa: E402
from shared.kinds.audio.decode import iter_samples  # noqa: E402
from shared.protocol import Match  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.sniff import sniff  # noqa: E402

DATA = ROOT / "bench" / "data" / "audio"
CACHE = ROOT / "bench" / "cache" / "audio"
SETTINGS = Settings.from_env()
TOL_S = 0.5
_FP_CODE = hashlib.sha1(
    b"".join((ROOT / "shared/kinds/audio" / n).read_bytes() for n in ("peaks.py", "triplets.py", "fingerprint.py"))
).hexdigest()[:12]


def key(path: str) -> str:
    return hashlib.sha1(path.encode()).hexdigest()[:16]


def _write_atomic(path: Path, data: bytes) -> None:
    """Write under a temporary name, then rename: two runs sharing the cache never read half a file."""
    partial = path.with_name(f".partial_{os.getpid()}_{path.name}")
    partial.write_bytes(data)
    partial.replace(path)


def pcm(path: str) -> tuple[np.ndarray, float]:
    """8 kHz mono samples from mediamatch's decoder, and the decode time (cached; the samples are written
    after their metadata, so a present ``.npy`` always has its ``.json``)."""
    npy, meta = CACHE / "pcm" / f"{key(path)}.npy", CACHE / "pcm" / f"{key(path)}.json"
    if npy.exists():
        return np.load(npy), json.loads(meta.read_text())["decode_s"]
    mime = sniff(Path(path).read_bytes()[:64]) or ""
    t0 = time.perf_counter()
    x = np.concatenate(list(iter_samples(Path(path), mime, 4 * 3600.0)))
    decode_s = time.perf_counter() - t0
    npy.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(meta, json.dumps({"decode_s": decode_s}).encode())
    buffer = io.BytesIO()
    np.save(buffer, x)
    _write_atomic(npy, buffer.getvalue())
    return x, decode_s


def fingerprint(path: str) -> tuple[AudioFingerprint, float, float, float]:
    """(fingerprint, duration_s, decode_s, fingerprint_s); the fingerprint is cached per code version."""
    x, decode_s = pcm(path)
    cached = CACHE / "fp" / _FP_CODE / f"{key(path)}.bin"
    meta = cached.with_suffix(".json")
    if cached.exists() and meta.exists():  # the time is the one measured when it was computed
        return AudioFingerprint.from_bytes(cached.read_bytes()), x.size / 8000, decode_s, json.loads(meta.read_text())["fingerprint_s"]
    t0 = time.perf_counter()
    fp = fingerprint_samples(x)
    fp_s = time.perf_counter() - t0
    cached.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(cached, fp.to_bytes())
    _write_atomic(meta, json.dumps({"fingerprint_s": fp_s}).encode())
    return fp, x.size / 8000, decode_s, fp_s


def degenerate_files() -> dict[str, str]:
    rng = np.random.default_rng(5)
    sr, n = 44100, 44100 * 20
    t = np.arange(n) / sr
    pink = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / np.sqrt(np.maximum(np.arange(n // 2 + 1), 1)), n)
    clicks2, clicks27 = np.zeros(n), np.zeros(n)
    clicks2[:: sr // 2] = 0.9
    clicks27[:: sr // 27] = 0.9
    signals = {
        "silence": np.zeros(n),
        "tone_440": 0.5 * np.sin(2 * np.pi * 440 * t),
        "tone_1000": 0.5 * np.sin(2 * np.pi * 1000 * t),
        "tone_chord": 0.2 * sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)),
        "white_noise_a": 0.3 * rng.standard_normal(n),
        "white_noise_b": 0.3 * rng.standard_normal(n),
        "pink_noise": 0.3 * pink / np.abs(pink).max(),
        "clicks_2hz": clicks2,
        "clicks_27hz": clicks27,
    }
    out = {}
    for name, x in signals.items():
        path = DATA / "degenerate" / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            sf.write(path, x.astype(np.float32), sr, subtype="PCM_16")
        out[name] = str(path)
    return out


def mm_decide(m: Match) -> tuple[bool, list[dict[str, float]]]:
    """The envelope rule of ``shared/matching.py`` at the default threshold and min_segment_s."""
    segs = [s for s in m.segments if s.duration_s >= SETTINGS.audio.min_segment_s]
    ok = m.similarity_score >= SETTINGS.audio.match_threshold and bool(segs)
    return ok, [s.to_json() for s in segs]


def boundary_errors(truth: dict[str, float], segs: list[dict[str, float]]) -> list[float] | None:
    """|errors| of (source start, source end, target start, target end) of the segment overlapping the truth most."""
    best, best_overlap = None, 0.0
    for s in segs:
        overlap = min(s["target_end"], truth["target_end_s"]) - max(s["target_start"], truth["target_start_s"])
        if overlap > best_overlap:
            best, best_overlap = s, overlap
    if best is None:
        return None
    return [
        abs(best["source_start"] - truth["source_start_s"]),
        abs(best["source_end"] - truth["source_end_s"]),
        abs(best["target_start"] - truth["target_start_s"]),
        abs(best["target_end"] - truth["target_end_s"]),
    ]


def is_hit(truth: dict[str, float], segs: list[dict[str, float]]) -> bool:
    return any(
        abs(s["source_start"] - truth["source_start_s"]) <= TOL_S and abs(s["target_start"] - truth["target_start_s"]) <= TOL_S
        for s in segs
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="eval")
    ap.add_argument("--tag", default="", help="suffix of the rows file (a trial of other settings)")
    ap.add_argument("--cp-threshold", type=int, default=0, help="Chromaprint threshold (0: read the tuning result)")
    args = ap.parse_args()
    manifest = json.loads((DATA / "manifest.json").read_text())
    tracks = [t for t in manifest["tracks"] if t["split"] == args.split]
    positives = [p for p in manifest["positives"] if p["split"] == args.split]
    degenerate = degenerate_files()
    files = [t["path"] for t in tracks] + [p["target_path"] for p in positives] + list(degenerate.values())

    fps: dict[str, AudioFingerprint] = {}
    cps: dict[str, np.ndarray] = {}
    speed = defaultdict(float)
    t_start = time.perf_counter()
    for n, path in enumerate(files):
        fp, dur, dec_s, fp_s = fingerprint(path)
        fps[path] = fp
        speed["audio_s"] += dur
        speed["decode_s"] += dec_s
        speed["fingerprint_s"] += fp_s
        speed["bytes"] += len(fp.to_bytes())
        t0 = time.perf_counter()
        cps[path] = chromaprint.fpcalc(Path(path), CACHE / "fpcalc" / f"{key(path)}.json")
        speed["fpcalc_s"] += time.perf_counter() - t0
        if n % 100 == 0:
            print(f"  {n}/{len(files)} files, {time.perf_counter() - t_start:.0f} s", file=sys.stderr)

    by_group: dict[str, list[dict[str, object]]] = defaultdict(list)
    for t in tracks:
        by_group[str(t["group"])].append(t)
    rng = np.random.default_rng(7)
    pairs: list[dict[str, object]] = []
    for p in positives:
        pairs.append({"kind": "positive", "source": p["source_path"], "target": p["target_path"], "job": p})
        same = [t for t in by_group[p["group"]] if t["name"] != p["source"]]
        other = [t for t in tracks if t["group"] != p["group"]]
        picks = list(rng.permutation(len(same))[:2])
        chosen = [same[i] for i in picks] + [other[int(rng.integers(len(other)))]]
        for t in chosen:
            kind = "neg_same_group" if t["group"] == p["group"] else "neg_other_group"
            pairs.append({"kind": kind, "source": t["path"], "target": p["target_path"], "job": p})
    for ts in by_group.values():
        for i, a in enumerate(ts):
            for b in ts[i + 1 :]:
                pairs.append({"kind": "neg_track_vs_track", "source": a["path"], "target": b["path"]})
    others = [t["path"] for t in tracks] + [p["target_path"] for p in positives[:: max(1, len(positives) // 60)]]
    for name, path in degenerate.items():
        for other in list(degenerate.values()) + others:
            if other != path:
                pairs.append({"kind": "degenerate", "source": path, "target": other, "name": name})
                pairs.append({"kind": "degenerate", "source": other, "target": path, "name": name})

    compare_s: list[float] = []
    cp_compare_s: list[float] = []
    rows = []
    for pr in pairs:
        a, b = fps[str(pr["source"])], fps[str(pr["target"])]
        t0 = time.perf_counter()
        m = KIND.compare(a, b, SETTINGS)
        compare_s.append(time.perf_counter() - t0)
        ok, segs = mm_decide(m)
        t0 = time.perf_counter()
        cp = chromaprint.compare(cps[str(pr["source"])], cps[str(pr["target"])])
        cp_compare_s.append(time.perf_counter() - t0)
        row = {
            "kind": pr["kind"],
            "source": Path(str(pr["source"])).name,
            "target": Path(str(pr["target"])).name,
            "mm_score": round(m.similarity_score, 4),
            "mm_match": ok,
            "mm_segments": segs,
            "mm_evidence": m.details.get("evidence"),
            "mm_time_scale": m.details.get("time_scale"),
            "mm_pitch_factor": m.details.get("pitch_factor"),
            "cp_count": cp.count,
            "cp_segment": [cp.source_start_s, cp.source_end_s, cp.target_start_s, cp.target_end_s],
        }
        if "job" in pr:
            job = pr["job"]
            assert isinstance(job, dict)
            row.update({k: job[k] for k in ("transform", "length_s", "source_start_s", "source_end_s", "target_start_s", "target_end_s", "time_scale")})
            row["factor"] = job.get("factor")
        rows.append(row)

    out = CACHE / f"{args.split}_rows{args.tag}.json"
    out.write_text(json.dumps({"rows": rows, "speed": speed, "compare_s": compare_s, "cp_compare_s": cp_compare_s, "fp_code": _FP_CODE}))
    print(f"wrote {out} ({len(rows)} pairs)")


if __name__ == "__main__":
    main()
