"""Log set-up for Consortia's processes: our own loggers at the chosen level, libraries only from WARNING.

Great Expectations, Prefect's HTTP client and MLflow log chatty INFO lines; a data owner reading a
party's log, or an engineer reading the coordinator's, should see Consortia's story first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

OWN_LOGGERS = ("components", "flows", "party_agent", "consortia")
FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def log_to_file(path: Path, level: int = logging.INFO) -> None:
    """``configure_logging`` into ``path``, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    configure_logging(level, filename=path)


def configure_logging(level: int = logging.INFO, **handler: Any) -> None:
    """``logging.basicConfig(**handler)`` with libraries at WARNING and Consortia's loggers at ``level``.

    Replaces any configuration made earlier (some libraries configure logging on import).
    """
    logging.basicConfig(level=logging.WARNING, format=FORMAT, force=True, **handler)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)
