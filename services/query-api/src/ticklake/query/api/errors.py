"""Map typed errors to HTTP: bad parameter 422, symbol not entitled 403, unknown symbol or
table version 404, lake down 503."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ticklake.query.api.responses import OrjsonResponse
from ticklake.query.auth.entitlements import NotEntitled
from ticklake.query.lake_reader import NoSuchVersion
from ticklake.query.lookups import LakeUnavailable, UnknownSymbol
from ticklake.query.params import InvalidParameter


async def _invalid_parameter(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidParameter)
    # The same body FastAPI gives for the parameters it checks itself.
    error = RequestValidationError(
        [
            {
                "type": "value_error",
                "loc": [exc.location, exc.name],
                "msg": exc.message,
                "input": None,
            }
        ]
    )
    return OrjsonResponse({"detail": error.errors()}, status_code=422)


async def _not_entitled(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotEntitled)
    request.app.state.metrics.auth_denied.labels("forbidden").inc()
    return OrjsonResponse({"detail": str(exc), "symbols": exc.symbols}, status_code=403)


async def _unknown_symbol(request: Request, exc: Exception) -> JSONResponse:
    return OrjsonResponse({"detail": str(exc)}, status_code=404)


async def _lake_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return OrjsonResponse({"detail": str(exc)}, status_code=503)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(InvalidParameter, _invalid_parameter)
    app.add_exception_handler(NotEntitled, _not_entitled)
    app.add_exception_handler(UnknownSymbol, _unknown_symbol)
    app.add_exception_handler(NoSuchVersion, _unknown_symbol)
    app.add_exception_handler(LakeUnavailable, _lake_unavailable)
