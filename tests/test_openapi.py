"""The served OpenAPI document is valid OpenAPI 3 and documents every route the app has."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from api.openapi import spec


def test_spec_is_valid_openapi() -> None:
    validate(spec())  # type: ignore[arg-type]


def test_every_route_is_documented(tmp_path: object) -> None:
    from api import create_app
    from tests.conftest import base_settings

    app = create_app(base_settings(tmp_path))  # type: ignore[arg-type]
    documented = set(spec()["paths"])
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "meta.openapi", "meta.docs"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        if "{kind}" in path:
            assert all(path.replace("{kind}", k) in documented for k in ("image", "audio", "video")), path
        else:
            assert path in documented, path
