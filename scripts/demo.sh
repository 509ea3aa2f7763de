#!/usr/bin/env bash
# Set up a virtualenv and run the whole service end to end on generated media (no services needed).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e .
exec .venv/bin/mediamatch demo
