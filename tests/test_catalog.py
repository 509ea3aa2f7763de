"""Catalogs: ingest, search, disable and delete, incremental freshness and restarts, on SQLite and
PostgreSQL (pure functions), and end to end through the API and a real worker."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from cli import synth
from shared import catalog, maintenance, media
from shared.index import replica as replica_module
from shared.index import snapshot
from shared.kinds import fingerprint_version, get_kind
from shared.protocol import LocalMedia, MediaKind, no_progress
from shared.settings import Settings
from shared.store import Store
from tests.conftest import ApiServer, WorkerProcess, base_settings
from tests.servers import HTTPTestServer, Reply


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("photos")
    out = {f"p{i}": synth.save_image(synth.photo(100 + i), d / f"p{i}.png") for i in range(6)}
    out["query"] = synth.save_image(np.ascontiguousarray(synth.photo(102)[:, ::-1]), d / "q.jpg", quality=55)
    return out


def loader(path: Path, settings: Settings) -> Any:
    def load(kind: MediaKind) -> LocalMedia:
        return media.describe(path, media.hash_file(path, 1 << 30), kind)

    return load


def ingest(store: Store, settings: Settings, catalog_id: str, external_id: str, path: Path) -> dict[str, Any]:
    request = {"catalog_id": catalog_id, "external_id": external_id, "metadata": {"name": external_id}}
    return catalog.ingest(store, settings, "image", request, loader(path, settings), no_progress)


def search(store: Store, settings: Settings, catalog_id: str, path: Path, top_k: int = 3) -> list[dict[str, Any]]:
    request = {"catalog_id": catalog_id, "top_k": top_k}
    return catalog.search(store, settings, "image", request, loader(path, settings), no_progress)["hits"]


def test_ingest_search_disable_delete_and_restart(store: Store, photos: dict[str, Path], tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    cat = store.catalogs.create(None, "refs", ["image"], {})
    for i in range(5):
        ingest(store, settings, cat.id, f"p{i}", photos[f"p{i}"])
    hits = search(store, settings, cat.id, photos["query"])
    assert hits[0]["external_id"] == "p2" and hits[0]["match"] is True
    assert hits[0]["metadata"] == {"name": "p2"} and all(not h["match"] for h in hits[1:])

    # Fresh: an item ingested after the replica was built is found by the very next search.
    ingest(store, settings, cat.id, "p5", photos["p5"])
    assert search(store, settings, cat.id, photos["p5"])[0]["external_id"] == "p5"

    store.catalogs.set_enabled(cat.id, "p2", False)
    assert all(h["external_id"] != "p2" for h in search(store, settings, cat.id, photos["query"]))
    store.catalogs.set_enabled(cat.id, "p2", True)
    assert search(store, settings, cat.id, photos["query"])[0]["external_id"] == "p2"

    before = search(store, settings, cat.id, photos["query"], top_k=10)
    replica_module.drop(cat.id)  # a restart: the replica is rebuilt from the database
    assert search(store, settings, cat.id, photos["query"], top_k=10) == before

    store.catalogs.delete_item(cat.id, "p2")
    assert all(h["external_id"] != "p2" for h in search(store, settings, cat.id, photos["query"]))
    assert store.catalogs.stats(cat.id)["items"] == {"image": {"enabled": 5, "disabled": 0}}


def snapshotting(tmp_path: Path, **index: Any) -> Settings:
    """Test settings whose replicas write a snapshot after every refresh that changed something."""
    s = base_settings(tmp_path)
    return dataclasses.replace(s, index=dataclasses.replace(s.index, snapshot_min_changes=1, **index))


def image_replica(catalog_id: str, settings: Settings) -> replica_module.CatalogIndex:
    return replica_module.replica(catalog_id, get_kind("image"), fingerprint_version("image"), None, settings)


def test_a_restart_resumes_from_the_snapshot_and_replays_only_what_followed(
    store: Store, photos: dict[str, Path], tmp_path: Path
) -> None:
    settings = snapshotting(tmp_path)
    cat = store.catalogs.create(None, "refs", ["image"], {})
    for i in range(4):
        ingest(store, settings, cat.id, f"p{i}", photos[f"p{i}"])
    search(store, settings, cat.id, photos["query"])  # builds the replica, which writes its snapshot
    written = image_replica(cat.id, settings).saved_event_id
    assert written is not None and written == image_replica(cat.id, settings).last_event_id
    assert [p.suffix for p in (tmp_path / "snapshots").iterdir()] == [".snapshot"]  # no temporary file left

    # Changes that no replica has seen: two new items, one disabled, one deleted. Then a restart.
    for i in (4, 5):
        ingest(store, settings, cat.id, f"p{i}", photos[f"p{i}"])
    store.catalogs.set_enabled(cat.id, "p1", False)
    store.catalogs.delete_item(cat.id, "p0")
    replica_module.drop(cat.id)
    restarted = image_replica(cat.id, settings)
    assert restarted.refresh(store) == 4  # only the four changed items were read and indexed
    assert restarted.restored_event_id == written and restarted.stats()["items"] == 4

    queries = [photos[k] for k in ("query", "p0", "p1", "p4", "p5")]
    resumed = [search(store, settings, cat.id, q, top_k=10) for q in queries]
    replica_module.drop(cat.id)
    threaded = dataclasses.replace(settings, index=dataclasses.replace(settings.index, search_threads=2))
    assert [search(store, threaded, cat.id, q, top_k=10) for q in queries] == resumed
    assert image_replica(cat.id, threaded).restored_event_id is not None  # threads are not what it is built with
    replica_module.drop(cat.id)
    off = dataclasses.replace(settings, index=dataclasses.replace(settings.index, snapshots=False))
    assert [search(store, off, cat.id, q, top_k=10) for q in queries] == resumed  # as rebuilt from the log
    assert image_replica(cat.id, off).restored_event_id is None
    found = {h["external_id"] for hits in resumed for h in hits if h["match"]}
    assert found == {"p2", "p4", "p5"}  # p0 deleted and p1 disabled after the snapshot stay gone


def test_a_snapshot_it_cannot_trust_is_dropped_and_the_log_rebuilds(
    store: Store, photos: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = snapshotting(tmp_path)
    cat = store.catalogs.create(None, "refs", ["image"], {})
    for i in range(3):
        ingest(store, settings, cat.id, f"p{i}", photos[f"p{i}"])
    expected = search(store, settings, cat.id, photos["query"], top_k=10)
    (path,) = (tmp_path / "snapshots").iterdir()

    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a torn file (a full disk, a crash)
    replica_module.drop(cat.id)
    assert search(store, settings, cat.id, photos["query"], top_k=10) == expected
    assert image_replica(cat.id, settings).restored_event_id is None and "unreadable" in caplog.text
    assert image_replica(cat.id, settings).saved_event_id is not None  # rebuilt, then written whole again

    other = snapshotting(tmp_path, image_local_keypoints=128)  # a replica built with other index settings
    replica_module.drop(cat.id)
    assert search(store, other, cat.id, photos["query"], top_k=10) == expected
    assert image_replica(cat.id, other).restored_event_id is None and "(settings differ)" in caplog.text
    replica_module.drop(cat.id)
    search(store, other, cat.id, photos["query"], top_k=10)
    assert image_replica(cat.id, other).restored_event_id is not None  # its own snapshot is trusted

    replica_module.drop(cat.id, other)  # the catalog is deleted: its snapshots go too
    assert list((tmp_path / "snapshots").iterdir()) == []

    # A catalog deleted through another process: the maintenance loop's purge pass removes its snapshot.
    kept = store.catalogs.create(None, "kept", ["image"], {})
    for c in (cat.id, kept.id):
        ingest(store, other, c, "p0", photos["p0"])
        search(store, other, c, photos["query"])
    store.catalogs.delete(cat.id)
    counts = maintenance.run_once(store, other, lambda job: None, lambda job_id: None, purge=True)
    assert counts["snapshots"] == 1
    assert [p.name.split(".")[0] for p in (tmp_path / "snapshots").iterdir()] == [kept.id]


def test_snapshot_files_name_any_catalog_id_and_orphans_are_found_by_it(tmp_path: Path) -> None:
    policy = replica_module.snapshot_policy(base_settings(tmp_path), "image")
    assert policy is not None
    ids = ["cat_0123abcd", "a.b/é%x", "..", "cat_0123abcd.image"]
    for n, catalog_id in enumerate(ids):
        path = policy.path(catalog_id, "image", 5, (n, 4))
        assert path.parent == tmp_path / "snapshots" and "/" not in path.name
        snapshot.save(path, {"catalog_id": catalog_id}, {"n": n})
        assert snapshot.load(path, {"catalog_id": catalog_id}) == {"n": n}
    assert snapshot.remove_orphans(policy.directory, lambda c: c in ids[:2]) == 2
    assert sorted(p.name for p in policy.directory.iterdir()) == sorted(
        policy.path(c, "image", 5, (n, 4)).name for n, c in enumerate(ids[:2]))


def test_fingerprints_are_cached_by_content(store: Store, photos: dict[str, Path], tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    cat = store.catalogs.create(None, "refs", ["image"], {})
    ingest(store, settings, cat.id, "a", photos["p0"])
    calls: list[str] = []
    kind = get_kind("image")

    class Counting:
        name = "image"

        def __getattr__(self, attr: str) -> Any:
            if attr == "fingerprint":
                calls.append(attr)
            return getattr(kind, attr)

    media_p0 = media.describe(photos["p0"], media.hash_file(photos["p0"], 1 << 30), kind)
    catalog.cached_fingerprint(store, Counting(), media_p0, settings, no_progress)  # type: ignore[arg-type]
    assert calls == []  # served from the cache, nothing decoded


def test_concurrent_ingest_and_search_lose_nothing(store: Store, tmp_path: Path) -> None:
    """Ingest threads and search threads share one replica: every ingest is searchable afterwards, every
    search succeeds meanwhile, and the replica ends with exactly the database's items."""
    settings = base_settings(tmp_path)
    cat = store.catalogs.create(None, "busy", ["image"], {})
    paths = [synth.save_image(synth.photo(300 + i), tmp_path / f"c{i}.png") for i in range(12)]
    errors: list[BaseException] = []
    searches = [0]
    done = threading.Event()

    def ingest_all(part: list[int]) -> None:
        try:
            for i in part:
                ingest(store, settings, cat.id, f"c{i}", paths[i])
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    def search_loop() -> None:
        try:
            while not done.is_set():
                search(store, settings, cat.id, paths[0])
                searches[0] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    writers = [threading.Thread(target=ingest_all, args=(list(range(k, 12, 3)),)) for k in range(3)]
    readers = [threading.Thread(target=search_loop) for _ in range(2)]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join(timeout=300)
    done.set()
    for t in readers:
        t.join(timeout=300)
    assert errors == [] and searches[0] > 0
    for i, path in enumerate(paths):
        hits = search(store, settings, cat.id, path, top_k=1)
        assert hits and hits[0]["external_id"] == f"c{i}" and hits[0]["match"] is True
    assert store.catalogs.stats(cat.id)["items"] == {"image": {"enabled": 12, "disabled": 0}}
    stats = catalog.search(store, settings, "image", {"catalog_id": cat.id}, loader(paths[0], settings), no_progress)
    assert stats["index"]["items"] == 12


# -- through the API, with a real worker ----------------------------------------------------------------
@pytest.fixture(scope="module")
def served(photos: dict[str, Path], media_server: HTTPTestServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    urls = {name: media_server.serve(f"/cat/{name}", path.read_bytes()) for name, path in photos.items()}
    d = tmp_path_factory.mktemp("clips")
    frames = synth.clip_frames(41, 14.0, 10)
    urls["clip"] = media_server.serve("/cat/clip.mp4", synth.save_video(frames, d / "clip.mp4", 10).read_bytes())
    urls["clip_part"] = media_server.serve(
        "/cat/part.mp4", synth.save_video(frames[30:110], d / "part.mp4", 10).read_bytes()
    )
    return urls


@pytest.fixture(scope="module")
def client(api: ApiServer, api_key: tuple[str, str], worker: WorkerProcess) -> Any:
    session = requests.Session()
    session.headers["X-API-Key"] = api_key[0]
    return lambda method, path, **kw: session.request(method, api.url + path, timeout=60, **kw)


def test_catalog_api_end_to_end(client: Any, served: dict[str, str], media_server: HTTPTestServer) -> None:
    r = client("POST", "/catalogs", json={"name": "refs", "media_types": ["image", "video"]})
    assert r.status_code == 201
    cat = r.json()["catalog_id"]
    for i in range(4):
        r = client("POST", f"/catalogs/{cat}/items",
                   json={"url": served[f"p{i}"], "external_id": f"p{i}", "media_type": "image", "metadata": {"i": i}})
        assert r.status_code == 200, r.text
        assert r.json()["external_id"] == f"p{i}" and r.json()["fingerprint_bytes"] > 0
    r = client("POST", f"/catalogs/{cat}/items", json={"url": served["clip"], "external_id": "clip", "media_type": "video"})
    assert r.status_code == 200, r.text

    r = client("POST", "/image/search", json={"url": served["query"], "catalog": cat, "top_k": 2})
    assert r.status_code == 200, r.text
    top = r.json()["hits"][0]
    assert top["external_id"] == "p2" and top["match"] is True and top["metadata"] == {"i": 2}
    assert top["matched_segments"] == [] and 0 <= top["similarity_score"] <= 1

    r = client("POST", "/video/search", json={"url": served["clip_part"], "catalog": cat})
    (hit,) = [h for h in r.json()["hits"] if h["match"]]
    assert hit["external_id"] == "clip"
    seg = max(hit["matched_segments"], key=lambda s: s["source_end"] - s["source_start"])
    # The query is the reference's seconds 3..11: the query's 0 s sits at the reference's 3 s.
    assert abs(seg["target_start"] - 3.0) <= 0.75 and abs(seg["source_start"]) <= 0.75

    assert client("PATCH", f"/catalogs/{cat}/items/p2", json={"enabled": False}).json()["enabled"] is False
    hits = client("POST", "/image/search", json={"url": served["query"], "catalog": cat}).json()["hits"]
    assert all(h["external_id"] != "p2" for h in hits)
    assert client("DELETE", f"/catalogs/{cat}/items/p3").status_code == 204
    assert client("GET", f"/catalogs/{cat}/items/p3").status_code == 404
    stats = client("GET", f"/catalogs/{cat}").json()
    assert stats["items"] == {"image": {"enabled": 2, "disabled": 1}, "video": {"enabled": 1, "disabled": 0}}

    r = client("POST", "/audio/search", json={"url": served["query"], "catalog": cat})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    assert client("DELETE", f"/catalogs/{cat}").status_code == 204
    assert client("GET", f"/catalogs/{cat}").status_code == 404


def test_bulk_ingest_from_a_manifest(client: Any, served: dict[str, str], media_server: HTTPTestServer) -> None:
    cat = client("POST", "/catalogs", json={"name": "bulk", "media_types": ["image"]}).json()["catalog_id"]
    lines = [json.dumps({"url": served[f"p{i}"], "external_id": f"b{i}"}) for i in range(6)]
    lines.append(json.dumps({"url": served["p0"]}))  # no external_id: one bad line
    manifest = media_server.serve("/cat/manifest.jsonl", "\n".join(lines).encode())
    r = client("POST", f"/catalogs/{cat}/items", json={"manifest_url": manifest})
    assert r.status_code == 202
    batch_id = r.json()["batch_id"]
    deadline = time.monotonic() + 60
    while (view := client("GET", f"/batches/{batch_id}").json())["status"] != "succeeded":
        assert time.monotonic() < deadline, view
        time.sleep(0.2)
    assert view["counts"]["succeeded"] == 6 and view["counts"]["failed"] == 1
    assert client("GET", f"/catalogs/{cat}").json()["items"] == {"image": {"enabled": 6, "disabled": 0}}


def _wait_batch(client: Any, path: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while (view := client("GET", path).json())["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, view
        time.sleep(0.2)
    return view


def _results(client: Any, batch_id: str) -> dict[str, dict[str, Any]]:
    items = client("GET", f"/batches/{batch_id}/results", params={"limit": 1000}).json()["items"]
    return {i["id"]: i for i in items}


def test_rescans_use_stored_fingerprints_and_never_fetch(
    client: Any, served: dict[str, str], media_server: HTTPTestServer, hook_server: HTTPTestServer
) -> None:
    refs = client("POST", "/catalogs", json={"name": "refs", "media_types": ["image"]}).json()["catalog_id"]
    uploads = client("POST", "/catalogs", json={"name": "uploads", "media_types": ["image"]}).json()["catalog_id"]
    for i in range(4):
        client("POST", f"/catalogs/{refs}/items", json={"url": served[f"p{i}"], "external_id": f"r{i}"})
    for name in ("query", "p4", "p5"):
        client("POST", f"/catalogs/{uploads}/items", json={"url": served[name], "external_id": f"u-{name}"})
    batch = client("POST", "/batches", json={"media_type": "image", "items": [
        {"id": "pair", "source_url": served["p5"], "target_url": served["query"]}]}).json()["batch_id"]
    _wait_batch(client, f"/batches/{batch}")

    fetched_before = len(media_server.requests())
    hook_server.route("/rescan", Reply(status=204))
    r = client("POST", "/rescans", json={"catalog": refs, "backlog": {"catalog": uploads},
                                         "webhook_url": hook_server.url("/rescan")})
    assert r.status_code == 202 and r.headers["Location"] == f"/rescans/{r.json()['rescan_id']}"
    view = _wait_batch(client, f"/rescans/{r.json()['rescan_id']}")
    assert view["counts"]["succeeded"] == 3
    results = _results(client, view["batch_id"])
    assert results["u-query"]["result"]["hits"][0]["external_id"] == "r2"
    assert results["u-query"]["result"]["hits"][0]["match"] is True
    assert not any(h["match"] for h in results["u-p4"]["result"]["hits"])  # p4 is not among the refs
    (hook,) = hook_server.wait_for_requests("/rescan", 1, timeout_s=30)
    assert hook.json()["type"] == "batch.succeeded"

    r = client("POST", "/rescans", json={"catalog": refs, "backlog": {"batch": batch}})
    view = _wait_batch(client, f"/rescans/{r.json()['rescan_id']}")
    results = _results(client, view["batch_id"])
    assert set(results) == {"pair:source", "pair:target"}
    assert results["pair:target"]["result"]["hits"][0]["external_id"] == "r2"
    assert len(media_server.requests()) == fetched_before  # nothing was fetched again


def test_self_rescan_lists_duplicate_clusters(client: Any, served: dict[str, str]) -> None:
    cat = client("POST", "/catalogs", json={"name": "self", "media_types": ["image"]}).json()["catalog_id"]
    for external_id, name in (("a", "p2"), ("a-copy", "query"), ("b", "p0"), ("c", "p1")):
        client("POST", f"/catalogs/{cat}/items", json={"url": served[name], "external_id": external_id})
    r = client("POST", "/rescans", json={"catalog": cat, "backlog": {"catalog": cat}})
    view = _wait_batch(client, f"/rescans/{r.json()['rescan_id']}")
    assert view["clusters"] == [["a", "a-copy"]]
