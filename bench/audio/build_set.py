"""Build the audio benchmark set from real recordings shipped in Debian packages (local files only).

Run by hand: ``.venv/bin/python bench/audio/build_set.py [workers [split]]`` (about 10-15 minutes on 2 cores;
with a split, only that split's targets are built and merged into the manifest). Files are written under a
temporary name and renamed when complete, so an interrupted or concurrent run never leaves half a file. Output goes under
``bench/data/audio/`` (gitignored): ``tracks/`` (sources: the first <= 240 s of each recording, 44.1 kHz
stereo FLAC), ``targets/`` (transformed excerpts inside unrelated filler, encoded) and ``manifest.json``.

- Sources: Wesnoth music (one soundtrack: hard negatives among themselves), Frets on Fire songs (metal/rock
  of the same genre and tempo; the song stems are mixed down, never used as separate tracks), Planet Blupi
  music, and speech built from the voice lines of Fish Fillets NG (English and Czech; one track per
  game level, all read by the same two actors: speech-vs-speech hard negatives).
- Fillers (the unrelated audio around an excerpt): Drascula and HyperRogue music, never used as sources.
- Tracks are split by a seeded shuffle into a tuning split (used to calibrate the scores of both methods)
  and an evaluation split (reported). Later splits (``LATER_SPLITS``, ``fresh`` to ``fresh4``, each built
  from its own seed) hold recordings of the same packages that no earlier split uses, for settings chosen
  after the earlier splits had been inspected.
- Each positive target is: filler, then the transformed excerpt of a source (5, 10 or 30 s starting at a
  seeded position) placed at a seeded offset, then filler, and the whole target encoded. Time and pitch
  changes are applied to the excerpt with rubberband (pitch, tempo) or sox (speed); ground truth scales
  the target side of the excerpt by the time factor. All randomness comes from ``SEED``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2] / "bench" / "data" / "audio"
SR = 44100
SEED = 20261125
MAX_TRACK_S = 240.0
MIN_TRACK_S = 40.0
#: name -> (excerpt time factor a (target s per source s), excerpt op, whole-target op, output suffix)
CODECS = ["mp3_32k", "aac_64k", "opus_32k", "vorbis_q0", "flac", "wav", "resample_8k_mono", "eq_light", "telephone"]
#: Later splits: name, extra tracks per group, English and Czech speech levels (index ranges).
LATER_SPLITS: list[tuple[str, dict[str, int], tuple[int, int], tuple[int, int]]] = [
    ("fresh", {"wesnoth": 8, "blupi": 4}, (4, 8), (6, 10)),
    ("fresh2", {"wesnoth": 8}, (8, 11), (10, 13)),
    ("fresh3", {"wesnoth": 6, "singularity": 8}, (11, 14), (13, 16)),
    # fresh4 takes what is left (it got 1 Wesnoth track, 6 Singularity tracks and 3 Czech levels; the English
    # levels past the 14th are under MIN_TRACK_S): built after the seventh pass's choices, run once.
    ("fresh4", {"wesnoth": 6, "singularity": 6}, (14, 17), (16, 19)),
]
PLAN: list[tuple[str, float]] = (
    [(c, length) for c in CODECS for length in (5.0, 10.0, 30.0)]
    + [("noise_10db", 10.0)]
    + [(f"{kind}_5", 10.0) for kind in ("pitch", "tempo", "speed")]
    + [(f"{kind}_10", length) for kind in ("pitch", "tempo", "speed") for length in (10.0, 30.0)]
)


def dpkg_files(package: str, suffix: str = ".ogg") -> list[Path]:
    out = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
    return sorted(Path(line) for line in out.splitlines() if line.endswith(suffix))


def decode(path: Path | str, max_s: float = MAX_TRACK_S, rate: int = SR) -> np.ndarray:
    """Decode to float32 stereo at ``rate`` with ffmpeg; an empty array when the file does not decode."""
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-t", str(max_s), "-f", "f32le", "-ac", "2", "-ar", str(rate), "-"]
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        return np.zeros((0, 2), np.float32)
    return np.frombuffer(r.stdout, np.float32).reshape(-1, 2).copy()


def speech_tracks(lang: str, n: int) -> list[tuple[str, list[Path]]]:
    """One speech track per Fish Fillets level: its voice lines in file order."""
    base = Path("/usr/share/games/fillets-ng/sound")
    levels = sorted(base.glob(f"*/{lang}"), key=lambda d: (-len(list(d.glob("*.ogg"))), d.name))
    return [(f"speech_{lang}_{d.parent.name}", sorted(d.glob("*.ogg"))) for d in levels[:n]]


def collect_tracks() -> list[dict[str, object]]:
    rng = np.random.default_rng(SEED)
    groups: dict[str, list[tuple[str, list[Path]]]] = {
        "wesnoth": [(f"wesnoth_{p.stem}", [p]) for p in dpkg_files("wesnoth-1.16-music")],
        "fretsonfire": [
            (f"fof_{p.parent.name.replace(' ', '_')}", sorted(p.parent.glob("*.ogg")))
            for pkg in ("fretsonfire-songs-muldjord", "fretsonfire-songs-sectoid")
            for p in dpkg_files(pkg)
            if p.name == "song.ogg"
        ],
        "blupi": [(f"blupi_{p.stem}", [p]) for p in dpkg_files("planetblupi-music-ogg")],
        "speech": speech_tracks("en", 4) + speech_tracks("cs", 6),
        "filler": [(f"drascula_{p.stem}", [p]) for p in dpkg_files("drascula-music")]
        + [(f"hyperrogue_{p.stem}", [p]) for p in dpkg_files("hyperrogue-music")],
        # Endgame: Singularity's soundtrack (electronic), only in fresh3: drawn after the others, which stay as they were.
        "singularity": [(f"singularity_{p.stem.replace(' ', '_')}", [p]) for p in dpkg_files("singularity-music")],
    }
    quota = {"wesnoth": 12, "fretsonfire": 8, "blupi": 6, "speech": 9, "filler": 14}
    # Later splits: recordings that no earlier split holds (the same shuffles, read further), each added to check
    # settings chosen after the splits before it had been seen (bench/audio/REPORT.md, fifth pass).
    later = list(LATER_SPLITS)
    for name, _, (en_lo, en_hi), (cs_lo, cs_hi) in later:
        groups[f"{name}:speech"] = speech_tracks("en", en_hi)[en_lo:] + speech_tracks("cs", cs_hi)[cs_lo:]
    tracks: list[dict[str, object]] = []
    (ROOT / "tracks").mkdir(parents=True, exist_ok=True)
    for group, items in groups.items():
        if ":" in group:  # a later split's speech, appended after the draws: the earlier splits' stay unchanged
            later_split, group = group.split(":")
            order, splits = np.arange(len(items)), [later_split] * len(items)
        else:
            order = rng.permutation(len(items))
            splits = ["filler" if group == "filler" else ("tune" if k % 3 == 0 else "eval") for k in range(quota.get(group, 0))]
            splits += [name for name, quotas, _, _ in later for _ in range(quotas.get(group, 0))]
        chosen = 0
        for i in order:
            if chosen >= len(splits):
                break
            name, parts = items[i]
            out = ROOT / "tracks" / f"{name}.flac"
            if not out.exists():
                if group == "fretsonfire":  # mix the stems of one song down (they are not independent)
                    stems = [decode(p) for p in parts]
                    n = min(s.shape[0] for s in stems)
                    x = sum(s[:n] for s in stems) / len(stems)
                else:
                    x = np.concatenate([decode(p) for p in parts] or [np.zeros((0, 2), np.float32)])[: int(MAX_TRACK_S * SR)]
                if x.shape[0] < MIN_TRACK_S * SR or np.sqrt(np.mean(x**2)) < 1e-3:
                    continue
                partial = out.with_name(f".partial_{os.getpid()}_{out.name}")  # atomic: a concurrent run never sees half a file
                sf.write(partial, 0.9 * x / max(np.abs(x).max(), 1e-9), SR, subtype="PCM_16")
                partial.replace(out)
            duration_s = sf.info(out).duration
            split = splits[chosen]
            tracks.append({"name": name, "group": group, "path": str(out), "duration_s": duration_s, "split": split})
            chosen += 1
    return tracks


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1.0))
    x = np.fft.irfft(spectrum, n)
    return (x / np.sqrt(np.mean(x**2))).astype(np.float32)


def time_pitch(x: np.ndarray, transform: str, factor: float) -> np.ndarray:
    """Apply pitch/tempo/speed ``factor`` (> 1: higher or faster) to stereo ``x`` with rubberband or sox."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        sf.write(src, x, SR, subtype="FLOAT")
        if transform == "pitch":
            cmd = ["rubberband", "-q", "-p", f"{12 * np.log2(factor):.6f}", str(src), str(dst)]
        elif transform == "tempo":
            cmd = ["rubberband", "-q", "-t", f"{1 / factor:.6f}", str(src), str(dst)]
        else:
            cmd = ["sox", str(src), "-b", "32", "-e", "floating-point", str(dst), "speed", f"{factor:.6f}", "rate", "-v", str(SR)]
        subprocess.run(cmd, check=True, capture_output=True)
        y, sr = sf.read(dst, dtype="float32", always_2d=True)
        assert sr == SR
        return y


def encode(x: np.ndarray, transform: str, out_stem: Path) -> Path:
    """Write ``x`` (44.1 kHz stereo) with the transform's codec and filters; return the file."""
    enc = {
        "mp3_32k": ([], ["-c:a", "libmp3lame", "-b:a", "32k"], ".mp3"),
        "aac_64k": ([], ["-c:a", "aac", "-b:a", "64k"], ".m4a"),
        "opus_32k": ([], ["-c:a", "libopus", "-b:a", "32k"], ".opus"),
        "vorbis_q0": ([], ["-c:a", "libvorbis", "-q:a", "0"], ".ogg"),
        "flac": ([], ["-c:a", "flac"], ".flac"),
        "wav": ([], ["-c:a", "pcm_s16le"], ".wav"),
        "resample_8k_mono": ([], ["-ar", "8000", "-ac", "1", "-c:a", "pcm_s16le"], ".wav"),
        "eq_light": (["-af", "equalizer=f=150:t=q:w=1:g=5,equalizer=f=2500:t=q:w=1.5:g=-5,treble=g=-3"], ["-c:a", "libmp3lame", "-b:a", "128k"], ".mp3"),
        "telephone": (["-af", "highpass=f=300:poles=2,lowpass=f=3400:poles=2"], ["-ar", "8000", "-ac", "1", "-c:a", "libmp3lame", "-b:a", "24k"], ".mp3"),
    }
    pre, codec, suffix = enc.get(transform, ([], ["-c:a", "flac"], ".flac"))
    if transform == "noise_10db":
        pre, codec, suffix = [], ["-c:a", "libmp3lame", "-b:a", "128k"], ".mp3"
    out = out_stem.with_suffix(suffix)
    partial = out.with_name(f".partial_{os.getpid()}_{out.name}")  # renamed when complete, so a resumed run skips only whole files
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "f32le", "-ar", str(SR), "-ac", "2", "-i", "-", *pre, *codec, str(partial)]
    subprocess.run(cmd, input=np.ascontiguousarray(x, np.float32).tobytes(), check=True, capture_output=True)
    partial.replace(out)
    return out


def make_target(job: dict[str, object]) -> dict[str, object]:
    rng = np.random.default_rng(int(job["seed"]))  # type: ignore[call-overload]
    transform, length = str(job["transform"]), float(job["length_s"])  # type: ignore[arg-type]
    src_frames = sf.info(str(job["source_path"])).frames
    filler_frames = sf.info(str(job["filler_path"])).frames
    # Every random draw that defines the truth comes first, in a fixed order.
    start = float(rng.uniform(0.0, src_frames / SR - length - 0.1))
    scale, kind, factor = 1.0, transform.split("_")[0], 1.0
    if kind in ("pitch", "tempo", "speed"):
        factor = 1.0 + (1 if rng.random() < 0.5 else -1) * int(transform.split("_")[1]) / 100.0
        scale = 1.0 if kind == "pitch" else 1.0 / factor
        job["factor"] = factor
    offset = float(rng.uniform(3.0, 15.0))
    tail = float(rng.uniform(3.0, 15.0))
    f0 = int(rng.uniform(0, max(filler_frames / SR - offset - tail - 1.0, 0.1)) * SR)
    job.update(
        source_start_s=start,
        source_end_s=start + length,
        target_start_s=offset,
        target_end_s=offset + length * scale,
        time_scale=scale,
    )
    existing = sorted((ROOT / "targets").glob(f"{job['id']}.*"))
    if existing:  # built by an earlier, interrupted run with the same draws
        job["target_path"] = str(existing[0])
        return job
    excerpt, _ = sf.read(str(job["source_path"]), start=int(start * SR), frames=int(length * SR), dtype="float32", always_2d=True)
    filler, _ = sf.read(str(job["filler_path"]), start=f0, frames=int((offset + tail) * SR), dtype="float32", always_2d=True)
    if kind in ("pitch", "tempo", "speed"):
        excerpt = time_pitch(excerpt, kind, factor)
    head_part, tail_part = filler[: int(offset * SR)], filler[int(offset * SR) :]
    # Match the excerpt's loudness to the filler's, as an editor would.
    gain = np.sqrt(np.mean(filler**2) / max(np.mean(excerpt**2), 1e-12))
    x = np.concatenate([head_part, np.clip(gain, 0.3, 3.0) * excerpt, tail_part])
    if transform == "noise_10db":
        noise = pink_noise(rng, x.shape[0])[:, None] * np.sqrt(np.mean(x**2) / 10.0)
        x = x + noise
    x = 0.9 * x / max(float(np.abs(x).max()), 1e-9)
    job["target_path"] = str(encode(x, transform, ROOT / "targets" / str(job["id"])))
    return job


def plan_jobs(tracks: list[dict[str, object]]) -> list[dict[str, object]]:
    """One job per (source, transform, length), with its filler and seed."""
    rank = {"tune": 0, "eval": 0} | {name: k + 1 for k, (name, *_) in enumerate(LATER_SPLITS)}
    sources = sorted((t for t in tracks if t["split"] != "filler"), key=lambda t: rank[str(t["split"])])  # stable
    fillers = [t for t in tracks if t["split"] == "filler"]
    jobs: list[dict[str, object]] = []
    rngs = {"tune": np.random.default_rng(SEED + 1)}  # tune and eval share one stream, in track order
    for k, (name, *_) in enumerate(LATER_SPLITS):
        rngs[name] = np.random.default_rng(SEED + 2 + k)  # its own draws: the earlier splits' stay as they were
    for t in sources:
        rng = rngs["tune" if t["split"] == "eval" else str(t["split"])]
        for transform, length in PLAN:
            jobs.append(
                {
                    "id": f"{t['name']}__{transform}__{int(length)}",
                    "source": t["name"],
                    "source_path": t["path"],
                    "group": t["group"],
                    "split": t["split"],
                    "transform": transform,
                    "length_s": length,
                    "filler_path": fillers[int(rng.integers(len(fillers)))]["path"],
                    "seed": int(rng.integers(2**31)),
                }
            )
    return jobs


def main() -> None:
    tracks = collect_tracks()
    jobs = plan_jobs(tracks)
    (ROOT / "targets").mkdir(parents=True, exist_ok=True)
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    only_split = sys.argv[2] if len(sys.argv) > 2 else None  # build one split first (the others stay unbuilt)
    if only_split:
        jobs = [j for j in jobs if j["split"] == only_split]
    with ProcessPoolExecutor(workers) as pool:
        done = list(pool.map(make_target, jobs, chunksize=4))
    manifest = ROOT / "manifest.json"
    if only_split and manifest.exists():  # a complete manifest is never replaced by a partial one: merged into
        old = json.loads(manifest.read_text())
        done = [p for p in old["positives"] if p["split"] != only_split] + done
    manifest.write_text(json.dumps({"seed": SEED, "tracks": tracks, "positives": done}, indent=1))
    print(f"{sum(t['split'] != 'filler' for t in tracks)} source tracks, {len(done)} positive targets")


if __name__ == "__main__":
    main()
