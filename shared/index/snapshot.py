"""Replica snapshots: an index replica's state on local disk, so a restart resumes instead of rebuilding.

Role: ``replica.CatalogIndex`` writes one after a refresh that applied enough item changes, and a new
replica (a restarted worker, the next CLI command) starts from it, then replays only the change-log events
after the snapshot's last one. Without a snapshot, or with one it cannot trust, the replica replays the
whole log: the database stays the system of record, and a snapshot is only ever a cache of it. Imports
nothing from Flask or Celery.

**Trust.** A snapshot is used only when its header matches the replica's exactly: the format, the catalog
(its id and creation time, so a catalog deleted and created again never inherits one), the media kind,
fingerprint version and shard, the index settings, and a digest of the index and kind source code (an
upgraded worker rebuilds rather than unpickle objects its code no longer describes). One that the header
rejects, or that fails to read, is deleted, logged, and the replica rebuilds from the log.

**Writes** are atomic: the file is written beside its final name and renamed over it, so a reader never
sees a partial snapshot, and several processes sharing a data directory may write the same one (each is
valid; the next reader replays from whichever cursor it finds). Temporary files left by a killed writer
are removed by the next write of that snapshot.

**Format**: two pickles in one file, the header, then the state. Unpickling runs code: the snapshot
directory (``Settings.data_dir / "snapshots"``) must be writable only by the service, like its SQLite
database.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = 1
#: A temporary file older than this is a killed writer's, and is removed.
_STALE_TMP_S = 3600.0


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of the source of the index and media-kind packages (what a snapshot's objects are)."""
    shared = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted([*(shared / "index").glob("*.py"), *(shared / "kinds").rglob("*.py")]):
        h.update(path.relative_to(shared).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@dataclass(frozen=True)
class SnapshotPolicy:
    """Where a replica's snapshot lives and when it is written (``IndexSettings.snapshot_*``)."""

    directory: Path
    #: Written after a refresh once this many item changes, and this fraction of the replica's items,
    #: were applied since the last snapshot (so a large catalog is not rewritten for every few items).
    min_changes: int
    change_fraction: float
    #: What the index was built with (its settings, as text): another value means another index.
    settings: str

    def path(self, catalog_id: str, kind: str, version: int, shard: tuple[int, int] | None) -> Path:
        part = "all" if shard is None else f"{shard[0]}of{shard[1]}"
        return self.directory / f"{_safe(catalog_id)}.{kind}.v{version}.{part}.snapshot"

    def due(self, changes: int, items: int) -> bool:
        return changes >= max(self.min_changes, self.change_fraction * items)


def save(path: Path, header: dict[str, Any], state: Any) -> int:
    """Write ``header`` and ``state`` to ``path`` atomically; return the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump({**header, "format": FORMAT, "code": code_digest()}, f, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        size = os.path.getsize(tmp)
        os.replace(tmp, path)
        return size
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path, header: dict[str, Any]) -> Any | None:
    """The state saved at ``path`` if its header matches ``header`` (and this code); else None, and a
    snapshot that does not match, or cannot be read, is deleted."""
    if not path.exists():
        return None
    expected = {**header, "format": FORMAT, "code": code_digest()}
    try:
        with path.open("rb") as f:
            found = pickle.load(f)
            if found != expected:
                differ = sorted(k for k in expected.keys() | found.keys() if found.get(k) != expected.get(k))
                log.warning("snapshot %s does not match this replica (%s differ): rebuilding from the change log",
                            path.name, ", ".join(differ))
                path.unlink(missing_ok=True)
                return None
            return pickle.load(f)
    except Exception as exc:  # a truncated, corrupt or foreign file: the log rebuilds what it held
        log.warning("snapshot %s is unreadable (%s: %s): rebuilding from the change log", path.name,
                    type(exc).__name__, exc)
        path.unlink(missing_ok=True)
        return None


def remove_catalog(directory: Path, catalog_id: str) -> int:
    """Delete every snapshot (and temporary file) of a catalog; return how many files went."""
    if not directory.is_dir():
        return 0
    name = _safe(catalog_id)
    gone = 0
    for path in directory.iterdir():
        if path.name.startswith((f"{name}.", f".{name}.")):
            path.unlink(missing_ok=True)
            gone += 1
    return gone


def remove_orphans(directory: Path, catalog_exists: Callable[[str], bool]) -> int:
    """Delete the snapshots of catalogs that no longer exist (deleted through another process, whose
    ``remove_catalog`` could not reach this directory); return how many files went."""
    if not directory.is_dir():
        return 0
    gone = 0
    known: dict[str, bool] = {}
    for path in directory.iterdir():
        catalog_id = _unsafe(path.name.lstrip(".").split(".", 1)[0])
        if catalog_id not in known:
            known[catalog_id] = catalog_exists(catalog_id)
        if not known[catalog_id]:
            path.unlink(missing_ok=True)
            gone += 1
    return gone


def _remove_stale_tmp(path: Path) -> None:
    now = time.time()
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if now - tmp.stat().st_mtime > _STALE_TMP_S:
                tmp.unlink()
        except FileNotFoundError:
            pass


def _safe(name: str) -> str:
    """A file-name-safe form of an id, with no dots (catalog ids are short tokens; anything else is escaped)."""
    return re.sub(r"[^A-Za-z0-9_-]", lambda m: "".join(f"%{b:02x}" for b in m.group().encode()), name)


def _unsafe(name: str) -> str:
    return re.sub(r"(?:%[0-9a-f]{2})+", lambda m: bytes.fromhex(m.group().replace("%", "")).decode(errors="replace"), name)
