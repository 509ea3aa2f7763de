"""``POST /{image,audio,video}/match``: two inputs as URLs (JSON) or uploads (multipart)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from api.submit import read_body, require_inputs, submit
from shared.errors import NotFound
from shared.kinds import KIND_NAMES
from shared.schemas import MatchRequestSchema

bp = Blueprint("match", __name__)
_REQUEST = MatchRequestSchema()
_SIDES = {"source": "source_url", "target": "target_url"}


@bp.post("/<kind>/match")
def match(kind: str) -> Any:
    if kind not in KIND_NAMES:
        raise NotFound(f"no endpoint /{kind}/match; media types are {', '.join(KIND_NAMES)}")
    body, uploads = read_body(_REQUEST, lambda _body: kind, {"source": "source", "target": "target"})
    require_inputs(body, uploads, _SIDES)
    return submit(kind, "match", body, uploads)
