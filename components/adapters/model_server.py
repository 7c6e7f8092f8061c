"""A registered model as an HTTP prediction server: MLflow's pyfunc scoring app, run by uvicorn.

The app is MLflow's own (``/invocations`` takes ``dataframe_split``, ``dataframe_records``, ``inputs``,
``instances`` JSON, CSV or Parquet; ``/ping``, ``/health`` and ``/version`` answer too), so requests are checked
against the model's signature: the contract's feature columns by name and type. One thing is added: MLflow's
4xx answers to a prediction request repeat the whole input frame and the whole schema before the error, so
the error is cut to the part that names the problem (``Model is missing inputs ['mean_radius']...``).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import Response

import components.adapters.tracking  # noqa: F401  (sets MLflow's import-time flags; mlflow is imported below)

# MLflow wraps an error raised while predicting as "Failed to predict data '<frame>'. \nError: <why>", and a
# schema mismatch as "Failed to enforce schema of data '<frame>' with schema '<schema>'. Error: <why>".
_WRAPPED = re.compile(r"^Failed to (?:predict|enforce schema of) data '.*'\. \s*Error: ", re.DOTALL)


def short_message(message: str) -> str:
    """MLflow's error ``message`` without the input frame and schema it quotes before the reason."""
    while (match := _WRAPPED.match(message)) is not None:
        message = message[match.end() :]
    return message.strip()


def prediction_app(tracking_uri: str, model_uri: str) -> Any:
    """MLflow's scoring app (FastAPI) for ``model_uri`` (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``)."""
    import mlflow
    from mlflow.pyfunc import scoring_server

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    for chatty in ("mlflow.pyfunc.scoring_server", "mlflow.models.utils"):  # a warning per request (extra columns)
        logging.getLogger(chatty).setLevel(logging.ERROR)
    app = scoring_server.init(mlflow.pyfunc.load_model(model_uri))

    @app.middleware("http")
    async def shorter_errors(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        if request.url.path != "/invocations" or not 400 <= response.status_code < 500:
            return response
        body = b"".join([chunk async for chunk in response.body_iterator])
        try:
            error = json.loads(body)
            error["message"] = short_message(error["message"])
        except (ValueError, TypeError, KeyError):  # not MLflow's JSON error (e.g. a 415 in plain text)
            return Response(body, response.status_code, media_type=response.media_type)
        error.pop("stack_trace", None)
        return Response(json.dumps(error), response.status_code, media_type="application/json")

    return app


def serve(app: Any, host: str, port: int) -> None:
    """Serve ``app`` on ``host:port`` until SIGINT or SIGTERM (uvicorn's graceful shutdown)."""
    uvicorn.run(app, host=host, port=port, log_level="warning")
