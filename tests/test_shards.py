"""A catalog split over two shards, each served by its own worker on its own queue, answers exactly as
one shard does."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from cli import synth
from shared import catalog
from shared.index.replica import shard_of
from shared.protocol import no_progress
from shared.settings import Settings
from tests.conftest import ApiServer, WorkerProcess, base_settings
from tests.servers import HTTPTestServer


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory, redis_url: str, pg_url: str) -> Settings:
    s = base_settings(tmp_path_factory.mktemp("shards"))
    return dataclasses.replace(
        s,
        redis_url=redis_url,
        store=dataclasses.replace(s.store, database_url=pg_url),
        index=dataclasses.replace(s.index, shards=2),
    )


@pytest.fixture(scope="module")
def cluster(sharded: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    logs = tmp_path_factory.mktemp("shard-logs")
    workers = [
        WorkerProcess(sharded, logs / "main.log", concurrency=1, queues="image,audio,video,control"),
        WorkerProcess(sharded, logs / "s0.log", concurrency=1, queues="shard-0"),
        WorkerProcess(sharded, logs / "s1.log", concurrency=1, queues="shard-1"),
    ]
    api = ApiServer(sharded)
    yield api
    api.stop()
    for w in workers:
        w.stop()


def test_two_shards_give_the_same_results_as_one(
    cluster: ApiServer, sharded: Settings, media_server: HTTPTestServer, tmp_path: Path
) -> None:
    key, _ = cluster.store.keys.create("shards")
    headers = {"X-API-Key": key}
    photos = {f"s{i}": synth.photo(300 + i) for i in range(6)}
    # Near-duplicates too, so a query has several hits that the shards must merge in the right order.
    photos.update({f"{k}-half": np.ascontiguousarray(v[::2, ::2]) for k, v in list(photos.items())})
    photos.update({f"{k}-crop": np.ascontiguousarray(v[10:-10, 10:-10]) for k, v in list(photos.items())[:6]})
    ids = list(photos)
    assert {shard_of(i, 2) for i in ids} == {0, 1}  # both shards hold items
    cat = requests.post(f"{cluster.url}/catalogs", json={"name": "sharded", "media_types": ["image"]},
                        headers=headers, timeout=30).json()["catalog_id"]
    for external_id, rgb in photos.items():
        url = media_server.serve(f"/shard/{external_id}.png", synth.save_image(rgb, tmp_path / f"{external_id}.png").read_bytes())
        r = requests.post(f"{cluster.url}/catalogs/{cat}/items", json={"url": url, "external_id": external_id},
                          headers=headers, timeout=60)
        assert r.status_code == 200, r.text

    one_shard = dataclasses.replace(sharded, index=dataclasses.replace(sharded.index, shards=1))
    for n, source in enumerate(("s1", "s4")):
        variant = np.ascontiguousarray(photos[source][:, ::-1])
        path = synth.save_image(variant, tmp_path / f"q{n}.jpg", quality=60)
        url = media_server.serve(f"/shard/q{n}.jpg", path.read_bytes())
        r = requests.post(f"{cluster.url}/image/search", json={"url": url, "catalog": cat, "top_k": 5},
                          headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        scattered = r.json()
        assert scattered["index"] == {"shards": 2}
        assert scattered["hits"][0]["external_id"] == source and scattered["hits"][0]["match"]

        request: dict[str, Any] = {"catalog_id": cat, "top_k": 5, "source_sha256": scattered["query"]["sha256"]}
        single = catalog.search(cluster.store, one_shard, "image", request, lambda _k: None, no_progress)  # type: ignore[arg-type,return-value]
        assert single is not None
        assert scattered["hits"] == single["hits"]
        assert len(scattered["hits"]) >= 3
        assert {h["external_id"] for h in scattered["hits"]} >= {source, f"{source}-half", f"{source}-crop"}
