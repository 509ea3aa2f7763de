"""``mediamatch catalog …``: catalogs in-process on the embedded store (or ``DATABASE_URL``), no broker.

    mediamatch catalog create refs --media-types image
    mediamatch catalog ingest CAT photo.jpg --id ref-1            # or --manifest items.jsonl
    mediamatch catalog search CAT upload.jpg --top-k 5
    mediamatch catalog rescan CAT --backlog OTHER_CAT --out hits.jsonl   # OTHER_CAT == CAT lists clusters
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cli.commands import Progress, _fail
from shared import batch, catalog, media
from shared.clusters import duplicate_clusters
from shared.errors import MediaMatchError
from shared.protocol import MediaKind, no_progress
from shared.settings import Settings
from shared.store import Store


def add_parser(sub: Any) -> None:
    p = sub.add_parser("catalog", help="catalogs for one-to-many search, in-process")
    cmds = p.add_subparsers(dest="catalog_command", required=True)
    c = cmds.add_parser("create", help="create a catalog and print its id")
    c.add_argument("name")
    c.add_argument("--media-types", default="image,audio,video")
    c.set_defaults(func=create)
    c = cmds.add_parser("ingest", help="add media to a catalog")
    c.add_argument("catalog")
    c.add_argument("ref", nargs="?", help="a path or URL")
    c.add_argument("--id", dest="external_id")
    c.add_argument("--media-type")
    c.add_argument("--metadata", type=json.loads, default=None)
    c.add_argument("--manifest", help='JSONL lines {"url" or "path", "external_id", "metadata"?}')
    c.set_defaults(func=ingest)
    c = cmds.add_parser("search", help="top-K lookup of one input")
    c.add_argument("catalog")
    c.add_argument("ref")
    c.add_argument("--media-type")
    c.add_argument("--top-k", type=int, default=10)
    c.add_argument("--threshold", type=float)
    c.set_defaults(func=search)
    c = cmds.add_parser("rescan", help="search every item of a backlog catalog (stored fingerprints, no fetch)")
    c.add_argument("catalog")
    c.add_argument("--backlog", required=True, help="the backlog catalog id (the same id lists duplicate clusters)")
    c.add_argument("--top-k", type=int, default=10)
    c.add_argument("--threshold", type=float)
    c.add_argument("--out", help="JSONL of {id, hits}; default stdout")
    c.set_defaults(func=rescan)


def _store(settings: Settings) -> Store:
    return Store.from_url(settings.database_url())


def _kind_for(store: Store, catalog_id: str, requested: str | None) -> str:
    cat = store.catalogs.get(catalog_id)
    if requested or len(cat.media_types) == 1:
        return requested or cat.media_types[0]
    raise MediaMatchError("--media-type is required for a catalog of several media types")


def create(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    cat = _store(settings).catalogs.create(None, args.name, args.media_types.split(","), {})
    print(json.dumps({"catalog_id": cat.id, "name": cat.name, "media_types": cat.media_types}))
    return 0


def _ingest_one(store: Store, settings: Settings, catalog_id: str, kind: str, ref: str, external_id: str,
                metadata: dict[str, Any] | None) -> dict[str, Any]:
    with media.workdir(settings, "cli-") as tmp:
        def load(k: MediaKind) -> media.LocalMedia:
            return media.resolve(ref, k, settings, tmp, "source", allow_local_paths=True)

        request = {"catalog_id": catalog_id, "external_id": external_id, "metadata": metadata}
        return catalog.ingest(store, settings, kind, request, load, no_progress)


def ingest(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    store = _store(settings)
    try:
        kind = _kind_for(store, args.catalog, args.media_type)
        if not args.manifest:
            if not args.ref or not args.external_id:
                raise MediaMatchError("give a path or URL and --id, or --manifest")
            print(json.dumps(_ingest_one(store, settings, args.catalog, kind, args.ref, args.external_id, args.metadata)))
            return 0
    except MediaMatchError as err:
        return _fail(err)
    with open(args.manifest, encoding="utf-8") as fh:
        lines = [json.loads(x) for x in fh if x.strip()]
    progress = Progress(len(lines))
    for line in lines:
        try:
            ref = line.get("url") or line.get("path")
            _ingest_one(store, settings, args.catalog, line.get("media_type") or kind, ref, line["external_id"], line.get("metadata"))
            progress.advance(ok=True)
        except (MediaMatchError, KeyError) as err:
            progress.advance(ok=False)
            print(json.dumps({"external_id": line.get("external_id"), "error": str(err)}), file=sys.stderr)
    progress.close()
    return 0


def search(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    store = _store(settings)
    try:
        kind = _kind_for(store, args.catalog, args.media_type)
        with media.workdir(settings, "cli-") as tmp:
            def load(k: MediaKind) -> media.LocalMedia:
                return media.resolve(args.ref, k, settings, tmp, "query", allow_local_paths=True)

            request = {"catalog_id": args.catalog, "top_k": args.top_k, "threshold": args.threshold}
            result = catalog.search(store, settings, kind, request, load, no_progress)
    except MediaMatchError as err:
        return _fail(err)
    print(json.dumps(result, indent=2))
    return 0


def rescan(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    store = _store(settings)
    items = list(batch.catalog_backlog(store, args.backlog, same=args.backlog == args.catalog))
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115
    progress = Progress(len(items))
    edges: list[tuple[str, str]] = []
    try:
        for item in items:
            request = {"catalog_id": args.catalog, "top_k": args.top_k, "threshold": args.threshold,
                       "source_sha256": item["sha256"], "exclude_external_id": item.get("exclude")}
            try:
                result = catalog.search(store, settings, item["media_type"], request, _no_fetch, no_progress)
                edges += [(item["id"], h["external_id"]) for h in result["hits"] if h["match"]]
                out.write(json.dumps({"id": item["id"], "hits": result["hits"]}) + "\n")
                progress.advance(ok=True)
            except MediaMatchError as err:
                out.write(json.dumps({"id": item["id"], "error": {"code": err.code, "message": err.message}}) + "\n")
                progress.advance(ok=False)
    finally:
        progress.close()
        if args.out:
            out.close()
    if args.backlog == args.catalog:
        print(json.dumps({"clusters": duplicate_clusters(edges)}), file=sys.stderr)
    return 0


def _no_fetch(_kind: MediaKind) -> media.LocalMedia:
    raise MediaMatchError("a re-scan never fetches")
