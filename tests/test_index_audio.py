"""The audio catalog index (``shared/index/audio.py``) against the brute-force reference, on generated audio.

Every item that the full ``compare`` scores above zero against a query (an excerpt inside unrelated audio,
an exact pitch shift by 8%, an exact tempo change by 8%, both at once, unrelated audio, noise) must be among
the index's candidates, and the copy must rank first; removal and re-adding take effect at once; and catalog
search through the service returns exactly the hits that comparing the query with every item gives.
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from shared import catalog, media
from shared.index import make_index
from shared.index.audio import AudioIndex
from shared.index.replica import rank_key
from shared.kinds.audio import KIND, AudioFingerprint, fingerprint_samples
from shared.protocol import LocalMedia, MediaKind, no_progress
from shared.settings import Settings
from shared.store import Store
from tests.conftest import base_settings
from tests.test_audio_kind import melody, noise, scene

SETTINGS = Settings()
SR = 8000  # fingerprint_samples takes samples at the kind's own rate


def cut(x: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    return x[int(start_s * SR) : int(end_s * SR)]


@functools.cache
def signal(name: str) -> np.ndarray:
    """Catalog items ``m<seed>`` (melodies) and ``s<seed>`` (scenes), 40 s, and the queries."""
    if name[0] in "ms" and name[1:].isdigit():
        seed = int(name[1:])
        return melody(seed, 40.0, SR) if name[0] == "m" else scene(seed, 40.0, SR)
    queries = {
        # 10 s of s3 between 5 s of unrelated melodies
        "excerpt": lambda: np.concatenate([melody(99, 5.0, SR), cut(signal("s3"), 10, 20), melody(98, 5.0, SR)]),
        "pitch": lambda: cut(melody(4, 40.0, SR, pitch=1.08), 10, 20),
        "tempo": lambda: cut(melody(4, 44.0, SR, stretch=1.08), 10.8, 21.6),
        "speed": lambda: cut(melody(5, 38.0, SR, pitch=0.93, stretch=0.93), 9.3, 18.6),
        "unrelated": lambda: melody(77, 10.0, SR),
        "noise": lambda: noise(5, 10.0, SR),
    }
    return queries[name]()


@functools.cache
def fp(name: str) -> AudioFingerprint:
    return fingerprint_samples(signal(name))


ITEMS = ["m4", "m5", "m6", "s1", "s2", "s3", "s7"]
COPY_OF = {"excerpt": "s3", "pitch": "m4", "tempo": "m4", "speed": "m5", "unrelated": None, "noise": None}


def test_the_registry_serves_the_audio_index() -> None:
    assert isinstance(make_index("audio"), AudioIndex)


@pytest.mark.parametrize("query", list(COPY_OF))
def test_every_item_the_reference_scores_is_a_candidate(query: str) -> None:
    index = AudioIndex(SETTINGS)
    for n, name in enumerate(ITEMS):
        index.add(n, fp(name))
    q = fp(query)
    scores = {name: KIND.compare(q, fp(name), SETTINGS).similarity_score for name in ITEMS}
    got = index.candidates(q, limit=100)
    assert {ITEMS.index(k) for k, s in scores.items() if s > 0} <= set(got), (query, scores, got)
    matched = {k for k, s in scores.items() if s >= SETTINGS.audio.match_threshold}
    copy = COPY_OF[query]
    assert matched == ({copy} if copy else set())  # the cases are the ones intended
    if copy:
        assert got[0] == ITEMS.index(copy)


def test_candidates_are_capped_by_the_setting() -> None:
    index = AudioIndex(SETTINGS)
    for n, name in enumerate(ITEMS):
        index.add(n, fp(name))
    q = fp("excerpt")
    assert len(index.candidates(q, limit=1)) == 1
    assert index.candidates(q, limit=1) == index.candidates(q, limit=100)[:1]


def test_remove_and_re_add_take_effect_at_once() -> None:
    index = AudioIndex(SETTINGS)
    for n, name in enumerate(ITEMS):
        index.add(n, fp(name))
    q = fp("excerpt")
    copy = ITEMS.index("s3")
    assert index.candidates(q, 10)[0] == copy
    full = index.n_postings
    index.remove(copy)
    assert copy not in index.candidates(q, 10) and len(index) == len(ITEMS) - 1
    for n in (0, 1):  # past a quarter of the postings dead, they are dropped
        index.remove(n)
    assert index.n_postings < 0.75 * full
    index.add(copy, fp("s3"))
    assert index.candidates(q, 10)[0] == copy
    index.add(copy, fp("s7"))  # the same key again replaces the item
    fresh = AudioIndex(SETTINGS)
    for n in range(2, len(ITEMS)):
        fresh.add(n, fp("s7" if n == copy else ITEMS[n]))
    assert index.candidates(q, 10) == fresh.candidates(q, 10) and copy not in index.candidates(q, 10)[:1]
    # A replica snapshot pickles the index (``shared/index/snapshot.py``): the copy answers alike.
    assert pickle.loads(pickle.dumps(index)).candidates(q, 10) == index.candidates(q, 10)


def test_segments_merge_as_items_arrive_one_by_one() -> None:
    """Items added between queries land in small sorted segments that merge; the answers do not change."""
    bulk, trickle = AudioIndex(SETTINGS), AudioIndex(SETTINGS)
    q = fp("tempo")
    for n, name in enumerate(ITEMS):
        bulk.add(n, fp(name))
        trickle.add(n, fp(name))
        trickle.candidates(q, 10)  # a query between adds flushes a segment
    assert trickle.strengths(q) == bulk.strengths(q)
    assert trickle.n_postings == bulk.n_postings == sum(fp(name).n_hashes for name in ITEMS)
    assert len(trickle._segments) <= int(np.log2(len(ITEMS))) + 1


@pytest.fixture
def store(tmp_path: Path):
    s = Store.from_url(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    yield s
    s.engine.dispose()


def _load(path: Path):
    def load(kind: MediaKind) -> LocalMedia:
        return media.describe(path, media.hash_file(path, 1 << 30), kind)

    return load


def test_catalog_search_gives_the_brute_force_hits(store: Store, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    cat = store.catalogs.create(None, "sounds", ["audio"], {})
    paths = {}
    for name in [*ITEMS, *COPY_OF]:
        paths[name] = tmp_path / f"{name}.flac"
        sf.write(paths[name], signal(name), SR)
    for name in ITEMS:
        request = {"catalog_id": cat.id, "external_id": name, "metadata": {"name": name}}
        catalog.ingest(store, settings, "audio", request, _load(paths[name]), no_progress)
    stored = {name: KIND.fingerprint(_load(paths[name])(KIND), settings) for name in ITEMS}
    for query in COPY_OF:
        result = catalog.search(store, settings, "audio", {"catalog_id": cat.id, "top_k": 10}, _load(paths[query]), no_progress)
        assert result["index"]["index"] == "AudioIndex"
        q = KIND.fingerprint(_load(paths[query])(KIND), settings)
        brute = sorted(
            ((name, KIND.compare(q, f, settings)) for name, f in stored.items()),
            key=lambda nm: rank_key(nm[1].similarity_score, nm[0]),
        )
        expected = [(name, round(float(m.similarity_score), 4)) for name, m in brute if m.similarity_score > 0]
        got = [(h["external_id"], h["similarity_score"]) for h in result["hits"]]
        assert got == expected, query
        if COPY_OF[query]:
            assert got[0][0] == COPY_OF[query] and result["hits"][0]["match"] is True
