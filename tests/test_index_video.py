"""The video catalog index (``shared/index/video.py``) against the brute-force reference, on generated clips.

Every item that the full ``compare`` scores above zero against a query (a trim, a mirrored clip, an
off-centre crop found only by the crop rescue, a mild crop, an unrelated clip) must be among the index's
candidates; removal and re-adding take effect at once; and catalog search through the service returns
exactly the hits that comparing the query with every item gives.
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np
import pytest

from shared import catalog
from shared.index import make_index
from shared.index.replica import rank_key
from shared.index.video import VideoIndex
from shared.kinds.video import KIND, VideoFingerprint
from shared.protocol import LocalMedia, MediaKind, no_progress
from shared.settings import Settings
from shared.store import Store
from tests.conftest import base_settings
from tests.test_video_kind import media, mild_crop, off_centre_crop, write_clip

SETTINGS = Settings()

ITEMS = {
    "s1": dict(pieces=[(1, 0.0, 30.0)]),
    "s2": dict(pieces=[(2, 0.0, 20.0)]),
    "s3": dict(pieces=[(3, 0.0, 20.0)]),
    "mix": dict(pieces=[(5, 0.0, 8.0), (1, 12.0, 6.0), (6, 0.0, 8.0)]),  # reuses 6 s of s1
    "s13": dict(pieces=[(13, 0.0, 20.0)]),
}
QUERIES = {
    "trim": dict(pieces=[(1, 10.0, 10.0)]),
    "flip": dict(pieces=[(1, 10.0, 12.0)], transform=lambda rgb: rgb[:, ::-1]),
    "crop_5s": dict(pieces=[(7, 0.0, 6.0), (1, 12.0, 5.0), (8, 0.0, 6.0)], transform=off_centre_crop),
    "s2_crop": dict(pieces=[(2, 3.0, 10.0)], transform=mild_crop),
    "unrelated": dict(pieces=[(20, 0.0, 10.0)]),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("index-video")

    @functools.cache
    def get(name: str) -> tuple[LocalMedia, VideoFingerprint]:
        spec = {**ITEMS, **QUERIES}[name]
        m = media(write_clip(d / f"{name}.mp4", **spec))
        return m, KIND.fingerprint(m, SETTINGS)

    return get


def brute_scores(query: VideoFingerprint, items: dict[str, VideoFingerprint]) -> dict[str, float]:
    return {k: KIND.compare(query, fp, SETTINGS).similarity_score for k, fp in items.items()}


def test_the_registry_serves_the_video_index() -> None:
    assert isinstance(make_index("video"), VideoIndex)


@pytest.mark.parametrize("query", list(QUERIES))
def test_every_item_the_reference_scores_is_a_candidate(clips, query: str) -> None:
    items = {name: clips(name)[1] for name in ITEMS}
    index = VideoIndex(SETTINGS)
    keys = {name: n for n, name in enumerate(items)}
    for name, fp in items.items():
        index.add(keys[name], fp)
    q = clips(query)[1]
    scored = {k for k, s in brute_scores(q, items).items() if s > 0}
    got = index.candidates(q, limit=100)
    assert {keys[k] for k in scored} <= set(got), (query, scored, got)
    expected = {
        "trim": {"s1", "mix"}, "flip": {"s1", "mix"}, "crop_5s": {"s1", "mix"}, "s2_crop": {"s2"}, "unrelated": set()
    }
    matched = {k for k, s in brute_scores(q, items).items() if s >= SETTINGS.video.match_threshold}
    assert matched == expected[query]  # the cases are the ones intended (flip, crop rescue, ...)
    if query in ("flip", "crop_5s"):  # found by the mirrored reading / only by the 64-bit crop rescue
        details = KIND.compare(q, items["s1"], SETTINGS).details
        assert details["flipped" if query == "flip" else "crop_rescue"] is True
    if matched:
        best = max(matched, key=lambda k: brute_scores(q, items)[k])
        assert got[0] == keys[best]  # the strongest copy is ranked first


def test_remove_and_re_add_take_effect_at_once(clips) -> None:
    index = VideoIndex(SETTINGS)
    for n, name in enumerate(ITEMS):
        index.add(n, clips(name)[1])
    q = clips("trim")[1]
    assert index.candidates(q, 10)[:2] == [0, 3]
    full_bytes = index.memory_bytes()
    index.remove(0)
    assert 0 not in index.candidates(q, 10) and len(index) == len(ITEMS) - 1
    index.remove(3)  # over a quarter of the codes are now dead: the flat codes are compacted
    assert not {0, 3} & set(index.candidates(q, 10))
    assert index.memory_bytes() < 0.75 * full_bytes
    index.add(0, clips("s1")[1])
    assert index.candidates(q, 10)[0] == 0
    index.add(0, clips("s2")[1])  # the same key again replaces the item
    assert 0 not in index.candidates(q, 10)
    # A replica snapshot pickles the index (``shared/index/snapshot.py``): the copy answers alike and grows alike.
    copy = pickle.loads(pickle.dumps(index))
    assert copy.candidates(q, 10) == index.candidates(q, 10) and len(copy) == len(index)
    for same in (copy, index):
        same.add(7, clips("s1")[1])
    assert copy.candidates(q, 10) == index.candidates(q, 10)


@pytest.fixture
def store(tmp_path: Path):
    s = Store.from_url(f"sqlite:///{tmp_path / 'v.sqlite3'}")
    yield s
    s.engine.dispose()


def _loader(m: LocalMedia):
    def load(kind: MediaKind) -> LocalMedia:
        return m

    return load


def test_catalog_search_gives_the_brute_force_hits(clips, store: Store, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    cat = store.catalogs.create(None, "videos", ["video"], {})
    for name in ITEMS:
        request = {"catalog_id": cat.id, "external_id": name, "metadata": {"name": name}}
        catalog.ingest(store, settings, "video", request, _loader(clips(name)[0]), no_progress)
    items = {name: clips(name)[1] for name in ITEMS}
    for query in QUERIES:
        m, q = clips(query)
        result = catalog.search(store, settings, "video", {"catalog_id": cat.id, "top_k": 10}, _loader(m), no_progress)
        assert result["index"]["index"] == "VideoIndex"
        brute = sorted(
            ((name, KIND.compare(q, fp, settings)) for name, fp in items.items()),
            key=lambda nm: rank_key(nm[1].similarity_score, nm[0]),
        )
        expected = [(name, round(float(mt.similarity_score), 4)) for name, mt in brute if mt.similarity_score > 0]
        got = [(h["external_id"], h["similarity_score"]) for h in result["hits"]]
        assert got == expected, query
        assert all(np.isclose(h["similarity_score"], s) for h, (_, s) in zip(result["hits"], expected, strict=True))
