"""Seeded transformed copies of the sources, with exact ground-truth segments, and the pair list.

A target is a timeline of pieces ``(file, start_s, length_s)`` cut from one source and from distractors
(``sources.py``), concatenated by FFmpeg, then edited and encoded. Cuts sit on multiples of 0.2 s (5 frames
at the sources' 25 fps), so the truth is frame-exact: a source piece at ``[s, s+d]`` lands at ``[t, t+d]`` of
the target. Frame-rate edits (``fps=24``, dropped frames for VFR) keep content time, so the truth holds.

Structures (cycled so every source gets three different ones): the whole source; a trim; a clip embedded
between unrelated footage; two or three reused clips, reordered, between unrelated footage; a short (3-4 s)
embedded clip. Edits (seeded): codec and container (H.264/mp4, H.265/mkv, VP9/webm, AV1/mkv, MPEG-4/avi,
H.264/mov), resolution and bitrate, letterbox or pillarbox, 30->24 fps, VFR, hflip, mild crop, colour edit,
text and logo overlay; audio kept, swapped for another track, or removed.

Pairs: every positive ``(source, target)`` has one negative ``(other source, target)``; plus hard negatives:
black and static videos against their own re-encodes, and two different videos sharing a generic intro.
"""

from __future__ import annotations

import json
import random
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sources import FONT, MUSIC, H, W

CODECS = [
    ("h264", "mp4", ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"]),
    (
        "h265",
        "mkv",
        ["-c:v", "libx265", "-preset", "ultrafast", "-crf", "28", "-x265-params", "log-level=error"],
    ),
    ("vp9", "webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "700k"]),
    ("av1", "mkv", ["-c:v", "libsvtav1", "-preset", "12", "-crf", "40"]),
    ("mpeg4", "avi", ["-c:v", "mpeg4", "-q:v", "6"]),
    ("h264", "mov", ["-c:v", "libx264", "-preset", "veryfast", "-crf", "26"]),
]
AUDIO_FOR = {"mp4": "aac", "mkv": "libopus", "webm": "libopus", "avi": "libmp3lame", "mov": "aac"}
EDITS = {
    "none": "",
    "small_lowbitrate": "scale=320:180",
    "hd": "scale=1280:720",
    "letterbox": "pad=iw:max(ih\\,iw*3/4):0:(oh-ih)/2:black",
    "pillarbox": "pad=iw*5/4:ih:iw/8:0:black",
    "fps24": "fps=24",
    "vfr": "select='not(eq(mod(n*7+3\\,11)\\,0))*not(eq(mod(n*5+1\\,13)\\,0))'",
    "hflip": "hflip",
    "crop": f"crop=iw*0.9:ih*0.9:iw*0.04:ih*0.06,scale={W}:{H}",
    "colour": "eq=brightness=0.06:contrast=1.2:saturation=1.4:gamma=0.9,hue=h=15",
    "overlay": f"drawtext=fontfile={FONT}:text='mediamatch TV':x=20:y=20:fontsize=26:fontcolor=white:box=1:"
    "boxcolor=black@0.5,drawbox=x=iw-110:y=ih-70:w=90:h=50:color=red@0.7:t=fill",
}
STRUCTURES = ["full", "trim", "embed", "multi", "short"]


@dataclass
class Target:
    name: str
    source: str
    pieces: list[tuple[str, float, float]]
    codec: str
    container: str
    edits: list[str]
    audio: str  # keep, swap, remove
    truth: list[list[float]] = field(default_factory=list)  # [src_start, tgt_start, src_end, tgt_end]
    path: str = ""


def _r(x: float) -> float:
    return round(round(x / 0.2) * 0.2, 1)


def _duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.strip())


def plan(sources: list[Path], distractors: list[Path], seed: int) -> list[Target]:
    """The seeded timeline and edits of three targets per source."""
    rng = random.Random(seed)
    dur = {p: _duration(p) for p in [*sources, *distractors]}
    out = []
    for i, src in enumerate(sources):
        d_src = dur[src] - 0.3
        for v in range(3):
            structure = STRUCTURES[(3 * i + v) % len(STRUCTURES)]

            def filler() -> tuple[str, float, float]:
                dis = rng.choice(distractors)
                length = _r(rng.uniform(2.0, min(8.0, dur[dis] - 0.4)))
                return (str(dis), _r(rng.uniform(0, dur[dis] - length - 0.2)), length)

            def clip(lo: float, hi: float, src: Path = src, d_src: float = d_src) -> tuple[str, float, float]:
                length = _r(rng.uniform(lo, min(hi, d_src - 0.2)))
                return (str(src), _r(rng.uniform(0, d_src - length)), length)

            if structure == "full":
                pieces = [(str(src), 0.0, _r(d_src))]
            elif structure == "trim":
                pieces = [clip(8, 20)]
            elif structure == "embed":
                pieces = [filler(), clip(5, 15), filler()]
            elif structure == "short":
                pieces = [filler(), clip(3, 4), filler()]
            else:
                clips = [clip(3, 8) for _ in range(rng.choice([2, 3]))]
                pieces = [filler()]
                for c in reversed(clips):  # reordered relative to the source
                    pieces += [c, filler()]
            codec, container, _ = CODECS[(3 * i + v) % len(CODECS)]
            edits = [rng.choice(list(EDITS))]
            if rng.random() < 0.4:
                second = rng.choice([e for e in EDITS if e not in ("none", edits[0])])
                if {second, edits[0]} & {"hd", "small_lowbitrate"} and {second, edits[0]} & {
                    "letterbox",
                    "pillarbox",
                }:
                    second = "colour"
                edits.append(second)
            if "vfr" in edits and container == "avi":  # AVI has no timestamps: VFR would shift content time
                edits = ["fps24" if e == "vfr" else e for e in edits]
            audio = rng.choices(["keep", "swap", "remove"], [0.5, 0.25, 0.25])[0]
            t = Target(f"t{i:02d}_{v}_{structure}", str(src), pieces, codec, container, edits, audio)
            t.truth = truth_of(t)
            out.append(t)
    return out


def truth_of(t: Target) -> list[list[float]]:
    boxes: list[list[float]] = []
    pos = 0.0
    for path, start, length in t.pieces:
        if path == t.source:
            box = [start, pos, start + length, pos + length]
            if boxes and abs(boxes[-1][2] - box[0]) < 1e-6 and abs(boxes[-1][3] - box[1]) < 1e-6:
                boxes[-1][2:] = box[2:]
            else:
                boxes.append(box)
        pos += length
    return [[round(x, 3) for x in b] for b in boxes]


def render(t: Target, out_dir: Path, seed: int) -> Path:
    out = out_dir / f"{t.name}.{t.container}"
    t.path = str(out)
    if out.exists():
        return out
    inputs: list[str] = []
    chains, labels = [], []
    for n, (path, start, length) in enumerate(t.pieces):
        inputs += ["-i", path]
        chains.append(f"[{n}:v]trim=start={start}:duration={length},setpts=PTS-STARTPTS[v{n}]")
        chains.append(f"[{n}:a]atrim=start={start}:duration={length},asetpts=PTS-STARTPTS[a{n}]")
        labels.append(f"[v{n}][a{n}]")
    k = len(t.pieces)
    edit = ",".join(EDITS[e] for e in t.edits if EDITS[e]) or "null"
    chains.append(f"{''.join(labels)}concat=n={k}:v=1:a=1[cv][ca]")
    chains.append(f"[cv]{edit},format=yuv420p[vo]")
    cmd = ["ffmpeg", "-y", "-v", "error", *inputs]
    maps = ["-map", "[vo]"]
    if t.audio == "swap":
        cmd += ["-stream_loop", "-1", "-i", random.Random(seed).choice(MUSIC[:8])]
        maps += ["-map", f"{k}:a", "-shortest"]
    if t.audio == "keep":
        maps += ["-map", "[ca]"]
    else:
        chains.append("[ca]anullsink")
    codec_args = next(c[2] for c in CODECS if c[0] == t.codec and c[1] == t.container)
    if "small_lowbitrate" in t.edits and t.codec in ("h264", "h265"):
        codec_args = [*codec_args[: codec_args.index("-crf")], "-b:v", "150k"]
    fps_mode = ["-fps_mode", "vfr"] if "vfr" in t.edits else []
    audio_args = ["-c:a", AUDIO_FOR[t.container], "-b:a", "96k"] if t.audio != "remove" else ["-an"]
    cmd += ["-filter_complex", ";".join(chains), *maps, *codec_args, *fps_mode, *audio_args, str(out)]
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{t.name}: {done.stderr[-2000:]}")
    return out


def special(root: Path, sources: list[Path], card: Path) -> list[dict[str, object]]:
    """Hard negatives: black and static videos against their re-encodes, and a shared generic intro."""
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "black.mp4": ["-f", "lavfi", "-i", f"color=black:s={W}x{H}:r=25:d=30"],
        "black_re.webm": ["-f", "lavfi", "-i", "color=0x050505:s=426x240:r=24:d=30"],
        "still.mp4": [
            "-loop",
            "1",
            "-framerate",
            "25",
            "-t",
            "30",
            "-i",
            str(sources[6].with_suffix(".png")),
        ],
        "still_re.mkv": [
            "-loop",
            "1",
            "-framerate",
            "24",
            "-t",
            "30",
            "-i",
            str(sources[6].with_suffix(".png")),
        ],
    }
    png = sources[6].with_suffix(".png")
    if not png.exists():
        subprocess.run(
            ["ffmpeg", "-y", "-v", "error", "-ss", "10", "-i", str(sources[6]), "-frames:v", "1", str(png)],
            check=True,
        )
    for name, inp in files.items():
        out = root / name
        if not out.exists():
            vf = ["-vf", "scale=426:240"] if name.endswith(("re.webm", "re.mkv")) else []
            subprocess.run(
                ["ffmpeg", "-y", "-v", "error", *inp, *vf, "-pix_fmt", "yuv420p", str(out)], check=True
            )
    intro = []
    for n, src in enumerate(sources[:6]):  # intro + 20 s of a different source each
        out = root / f"intro_{n}.mp4"
        if not out.exists():
            fc = (
                "[1:v]trim=0:20,setpts=PTS-STARTPTS[v1];[1:a]atrim=0:20,asetpts=PTS-STARTPTS[a1];"
                "[0:v][0:a][v1][a1]concat=n=2:v=1:a=1[v][a]"
            )
            subprocess.run(
                [
                    "ffmpeg",
                    "-y",
                    "-v",
                    "error",
                    "-i",
                    str(card),
                    "-i",
                    str(src),
                    "-filter_complex",
                    fc,
                    "-map",
                    "[v]",
                    "-map",
                    "[a]",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-crf",
                    "23",
                    str(out),
                ],
                check=True,
            )
        intro.append(out)
    pairs: list[dict[str, object]] = [
        {
            "source": str(root / "black.mp4"),
            "target": str(root / "black_re.webm"),
            "truth": [],
            "kind": "black",
        },
        {
            "source": str(root / "still.mp4"),
            "target": str(root / "still_re.mkv"),
            "truth": [],
            "kind": "static",
        },
    ]
    for n in range(0, 6, 2):
        pairs.append(
            {"source": str(intro[n]), "target": str(intro[n + 1]), "truth": [], "kind": "shared_intro"}
        )
    return pairs


def build(
    root: Path, sources: list[Path], distractors: list[Path], card: Path, seed: int = 7
) -> list[dict[str, object]]:
    out_dir = root / "targets"
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = plan(sources, distractors, seed)
    rng = random.Random(seed + 1)
    pairs: list[dict[str, object]] = []
    for n, t in enumerate(targets):
        render(t, out_dir, seed + n)
        meta = asdict(t)
        pairs.append(
            {"source": t.source, "target": t.path, "truth": t.truth, "kind": "positive", "meta": meta}
        )
        other = rng.choice([s for s in sources if str(s) != t.source])
        pairs.append({"source": str(other), "target": t.path, "truth": [], "kind": "negative", "meta": meta})
    pairs += special(root / "special", sources, card)
    (root / "pairs.json").write_text(json.dumps(pairs, indent=1))
    return pairs
