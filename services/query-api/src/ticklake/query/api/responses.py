"""JSON responses serialised by orjson.

FastAPI 0.120+ deprecates its own ``ORJSONResponse`` (it now serialises
response models through pydantic). Our handlers build plain dicts and skip
model validation on the hot path (/latest), so they return this class
directly; the models in :mod:`ticklake.query.api.models` still document the
shapes in OpenAPI, and the schemathesis test holds the two together.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
