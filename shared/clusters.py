"""Duplicate clusters from a catalog re-scanned against itself: connected components of its matches."""

from __future__ import annotations

from collections.abc import Iterable


def duplicate_clusters(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Groups of ids linked by a match (union-find), largest first; singletons are not clusters."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = {}
    for x in parent:
        groups.setdefault(find(x), []).append(x)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))
