"""Speed and memory of the audio kind against ``fpcalc``, in the same run (after ``build_set.py``).

Usage: ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/audio/speed.py [--tracks A B ...]``
(``--tracks``: build the test files from these recordings instead of the first four evaluation tracks over
150 s in ``build_set.py``'s manifest, so the speed can be measured without building the whole set).

1. Fingerprinting on one core, decode excluded: ``fingerprint_samples`` on 5 minutes of decoded 8 kHz PCM,
   best of 3 (the machine is shared, so the best run is the least disturbed one).
2. End to end: two 5-minute MP3s (B holds A's last 4 minutes, re-encoded, after 60 s of other music) through
   ``shared.matching.match_media`` (decode, fingerprint, compare, envelope), median of 3; the peer is
   ``fpcalc -raw`` on both files plus the offset search.
3. Memory: peak RSS of a fresh process that fingerprints a 1-hour MP3, next to one that fingerprints the
   5-minute one (streamed decode: the difference should be the fingerprint, not the audio); ``fpcalc`` too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import chromaprint  # noqa: E402

from shared.kinds.audio import KIND, fingerprint_samples  # noqa: E402
from shared.kinds.audio.decode import iter_samples  # noqa: E402
from shared.matching import match_media  # noqa: E402
from shared.protocol import LocalMedia  # noqa: E402
from shared.settings import Settings  # noqa: E402

DATA = ROOT / "bench" / "data" / "audio"
OUT = DATA / "speed"
_RSS = """
import resource, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from shared.kinds.audio import KIND
from shared.protocol import LocalMedia
from shared.settings import Settings
fp = KIND.fingerprint(LocalMedia(Path({path!r}), 0, "0" * 64, "audio/mpeg"), Settings())
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, fp.duration_s, len(fp.to_bytes()))
"""


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True)


def local(path: Path) -> LocalMedia:
    data = path.read_bytes()
    return LocalMedia(path, len(data), hashlib.sha256(data).hexdigest(), "audio/mpeg")


def build(tracks: list[str], out: Path) -> tuple[Path, Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    a, b, hour = out / "a_5min.mp3", out / "b_5min.mp3", out / "hour.mp3"
    lst = out / "list.txt"
    lst.write_text("".join(f"file '{t}'\n" for t in tracks * 20))
    if not a.exists():
        ffmpeg("-f", "concat", "-safe", "0", "-i", str(lst), "-t", "300", "-c:a", "libmp3lame", "-b:a", "128k", str(a))
    if not b.exists():
        other = tracks[-1]
        ffmpeg("-i", other, "-i", str(a), "-filter_complex",
               "[0:a]atrim=0:60,asetpts=N/SR/TB[x];[1:a]atrim=60:300,asetpts=N/SR/TB[y];[x][y]concat=n=2:v=0:a=1",
               "-c:a", "libmp3lame", "-b:a", "96k", str(b))
    if not hour.exists():
        ffmpeg("-f", "concat", "-safe", "0", "-i", str(lst), "-t", "3600", "-ac", "1", "-c:a", "libmp3lame", "-b:a", "64k", str(hour))
    return a, b, hour


def peak_rss_kb(path: Path) -> tuple[int, float, int]:
    out = subprocess.run([sys.executable, "-c", _RSS.format(root=str(ROOT), path=str(path))], capture_output=True, text=True, check=True)
    rss, dur, size = out.stdout.split()
    return int(rss), float(dur), int(size)


def fpcalc_rss_kb(path: Path) -> int:
    """Peak RSS of fpcalc alone, measured by a fresh wrapper process (RUSAGE_CHILDREN keeps the maximum
    over every child a process ever waited for, so it cannot be read here after the runs above)."""
    # fpcalc exits with 3 on a harmless "End of file" decode message at the end of MP3s; its output is complete.
    code = (
        "import resource, subprocess, sys; "
        "subprocess.run(['fpcalc', '-raw', '-length', '0', sys.argv[1]], capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracks", nargs="+", help="recordings to build the test files from")
    args = ap.parse_args()
    if args.tracks:
        tracks, out = [str(Path(t).resolve()) for t in args.tracks], OUT.with_name("speed_tracks")
    else:
        manifest = json.loads((DATA / "manifest.json").read_text())
        tracks = [t["path"] for t in manifest["tracks"] if t["split"] == "eval" and t["duration_s"] > 150][:4]
        out = OUT
    a, b, hour = build(tracks, out)
    settings = Settings()
    result: dict[str, object] = {"uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
                                 "tracks": tracks}

    x = np.concatenate(list(iter_samples(a, "audio/mpeg", 4 * 3600.0)))
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        fingerprint_samples(x)
        runs.append(time.perf_counter() - t0)
    result["fingerprint_x_realtime_best_of_3"] = round(x.size / 8000 / min(runs), 1)
    result["fingerprint_x_realtime_median_of_3"] = round(x.size / 8000 / statistics.median(runs), 1)

    e2e, peer, envelope = [], [], {}
    for _ in range(3):
        t0 = time.perf_counter()
        envelope = match_media(KIND, local(a), local(b), settings)
        e2e.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        cp = chromaprint.compare(chromaprint.fpcalc(a), chromaprint.fpcalc(b))
        peer.append(time.perf_counter() - t0)
    result["end_to_end_two_5min_mp3_s"] = {"mediamatch_median": round(statistics.median(e2e), 3), "mediamatch_all": [round(v, 3) for v in e2e],
                                           "chromaprint_median": round(statistics.median(peer), 3)}
    result["end_to_end_envelope"] = {k: envelope[k] for k in ("match", "similarity_score", "matched_segments")}
    result["end_to_end_chromaprint"] = {"count": cp.count, "segment": [round(v, 2) for v in (cp.source_start_s, cp.target_start_s, cp.source_end_s, cp.target_end_s)]}

    rss_5, dur_5, size_5 = peak_rss_kb(a)
    rss_60, dur_60, size_60 = peak_rss_kb(hour)
    result["peak_rss_mb"] = {"mediamatch_5min": round(rss_5 / 1024, 1), "mediamatch_1h": round(rss_60 / 1024, 1),
                             "fpcalc_1h": round(fpcalc_rss_kb(hour) / 1024, 1)}
    result["fingerprint_kb_per_min"] = {"5min": round(size_5 / 1000 / (dur_5 / 60), 1), "1h": round(size_60 / 1000 / (dur_60 / 60), 1)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
