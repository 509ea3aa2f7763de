"""Distractor audio for the 100-hour catalog: re-cut, re-mixed and speed-changed excerpts of real recordings.

Usage: ``OMP_NUM_THREADS=1 .venv/bin/python bench/catalog/audio/distractors.py [hours]`` (default 100).
Fingerprints go to ``bench/cache/catalog/audio/distractors/<n>.bin`` (existing ones are kept), with the CPU
time spent on each (decode of the pool, synthesis and fingerprinting) in ``distractors.json``.

The pool: every recording of the installed Debian music packages that the audio benchmark does *not* use as
a source track (``bench/data/audio/manifest.json``), from packages that provide none of its fillers: the
unused Wesnoth and Planet Blupi tracks, Fish Fillets NG's music and the Ren'Py demo's music.
So a query of the benchmark shares no audio with any distractor, while the distractors share the genres,
instruments and composers of the sources (the hard part for an index: similar hash statistics).

Each distractor is 3 to 6 minutes long, made of pieces of 15 to 60 s. A piece is an excerpt of a random pool
recording at a random speed factor in [0.8, 1.25] (resampled by linear interpolation at 8 kHz: pitch and
tempo change together, as with a turntable), half of the time mixed with a second such excerpt at a gain
of 0.3 to 0.7; pieces are joined with 50 ms cross-fades. The audio is synthesised at the kind's 8 kHz rate
and fingerprinted with the kind's own ``fingerprint_samples``; it is never encoded to a file.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "audio"))

from build_set import dpkg_files  # noqa: E402

from shared.errors import DecodeFailed  # noqa: E402
from shared.kinds.audio import AudioFingerprint, fingerprint_samples  # noqa: E402
from shared.kinds.audio.decode import SAMPLE_RATE_HZ, iter_samples  # noqa: E402
from shared.sniff import sniff  # noqa: E402

SR = SAMPLE_RATE_HZ
MANIFEST = ROOT / "bench" / "data" / "audio" / "manifest.json"
OUT = ROOT / "bench" / "cache" / "catalog" / "audio" / "distractors"
#: Drascula and HyperRogue are left out entirely: the benchmark's fillers come from them, and Drascula ships
#: the same music more than once (one ``track30.ogg`` per language matches the ``track1`` filler).
PACKAGES = {
    "wesnoth": "wesnoth-1.16-music",
    "blupi": "planetblupi-music-ogg",
}
EXTRA_DIRS = {"fillets": Path("/usr/share/games/fillets-ng/music"), "renpy": Path("/usr/share/games/renpy/demo/game")}


def pool_paths() -> list[Path]:
    """Installed recordings that the audio benchmark uses neither as a source nor as filler."""
    used = {t["name"] for t in json.loads(MANIFEST.read_text())["tracks"]}
    out = [p for group, pkg in PACKAGES.items() for p in dpkg_files(pkg) if f"{group}_{p.stem}" not in used]
    for d in EXTRA_DIRS.values():
        out += sorted(d.glob("*.ogg"))
    return out


def decode(path: Path) -> np.ndarray:
    """8 kHz mono samples with the kind's own decoder (the MIME type sniffed, as the service does); empty
    when the file does not decode."""
    try:
        mime = sniff(path.read_bytes()[:4096]) or "audio/ogg"
        return np.concatenate(list(iter_samples(path, mime, 3600.0, lambda _f: None)) or [np.zeros(0, np.float32)])
    except DecodeFailed:
        return np.zeros(0, np.float32)


def _excerpt(pool: list[np.ndarray], length_s: float, rng: np.random.Generator) -> np.ndarray:
    src = pool[int(rng.integers(len(pool)))]
    speed = float(rng.uniform(0.8, 1.25))
    need = int(length_s * SR * speed) + 2
    start = int(rng.integers(0, max(1, src.size - need)))
    part = src[start : start + need]
    n_out = int((part.size - 1) / speed)
    return np.interp(np.arange(n_out) * speed, np.arange(part.size), part).astype(np.float32)


def synthesise(pool: list[np.ndarray], seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 11])
    total = int(rng.uniform(180, 360) * SR)
    fade = int(0.05 * SR)
    out = np.zeros(0, np.float32)
    while out.size < total:
        piece = _excerpt(pool, float(rng.uniform(15, 60)), rng)
        if rng.random() < 0.5:
            other = _excerpt(pool, piece.size / SR + 0.1, rng)[: piece.size]
            piece[: other.size] += float(rng.uniform(0.3, 0.7)) * other
        piece /= max(float(np.abs(piece).max()), 1e-6) * 2
        if out.size >= fade and piece.size >= fade:
            ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
            out[-fade:] = out[-fade:] * (1 - ramp) + piece[:fade] * ramp
            piece = piece[fade:]
        out = np.concatenate([out, piece])
    return out[:total]


def main() -> None:
    hours = float(sys.argv[1]) if len(sys.argv) > 1 else 100.0
    # A second process may start further on (``start``): it stops at the first distractor already built.
    start = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.process_time()
    paths = pool_paths()
    pool = [x for x in (decode(p) for p in paths) if x.size > 20 * SR]
    pool_s = sum(x.size for x in pool) / SR
    decode_cpu_s = time.process_time() - t0
    print(f"pool: {len(pool)} recordings, {pool_s / 3600:.2f} h, decoded in {decode_cpu_s:.1f} s CPU", flush=True)
    log_path = OUT.parent / ("distractors.json" if start == 0 else f"distractors_{start}.json")
    log = json.loads(log_path.read_text()) if log_path.exists() else {}
    total_s, seed = 0.0, start
    while total_s < hours * 3600:
        path = OUT / f"{seed}.bin"
        if path.exists() and start > 0:
            break
        if path.exists():
            total_s += AudioFingerprint.from_bytes(path.read_bytes()).duration_s
        else:
            t1 = time.process_time()
            x = synthesise(pool, seed)
            t2 = time.process_time()
            fp = fingerprint_samples(x)
            t3 = time.process_time()
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(fp.to_bytes())
            tmp.rename(path)  # complete or absent, never half written
            log[str(seed)] = {"duration_s": fp.duration_s, "synth_cpu_s": t2 - t1, "fingerprint_cpu_s": t3 - t2}
            total_s += fp.duration_s
            if seed % 50 == 0:
                log_path.write_text(json.dumps(log))
                print(f"{seed}: {total_s / 3600:.1f} h", flush=True)
        seed += 1
    log["_pool"] = {"recordings": len(pool), "hours": pool_s / 3600, "paths": [str(p) for p in paths]}
    log_path.write_text(json.dumps(log))
    print(f"{seed} distractors, {total_s / 3600:.2f} h", flush=True)


if __name__ == "__main__":
    main()
