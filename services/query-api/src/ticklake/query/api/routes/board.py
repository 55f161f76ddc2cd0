"""``GET /``: the live board, a static page served from the package (no build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse

router = APIRouter(tags=["board"])

INDEX = Path(__file__).resolve().parents[2] / "static" / "index.html"


@router.get("/", include_in_schema=False)
async def board() -> FileResponse:
    return FileResponse(INDEX, media_type="text/html")
