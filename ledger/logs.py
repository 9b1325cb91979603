"""JSON logs through structlog, one line per event, for every process of the product.

Our own log lines and those of libraries using the standard `logging` module (uvicorn,
alembic) share one JSON renderer. Secrets never reach a log: settings hold them as
SecretStr, and nothing here is given a key or a signing secret to print. Nor does customers'
personal data, even at debug: the libraries whose debug lines carry it are held at info.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import Processor

# Their debug lines carry data: aiosqlite prints every call with its SQL parameters (whole
# payloads), stripe prints Stripe's request and response bodies (customers' names, emails).
_DATA_AT_DEBUG = ("aiosqlite", "stripe")


def configure_logging(level: str = "info", stream: TextIO = sys.stdout) -> None:
    """JSON lines to `stream`: stdout for the server, stderr for commands whose stdout
    is their result (`metrics --json`)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in _DATA_AT_DEBUG:
        logging.getLogger(name).setLevel(max(numeric, logging.INFO))
    # SQLAlchemy logs its statements at INFO (parameters hidden: ledger/engine.py) and the
    # rows it reads at DEBUG: at debug, the statements only; otherwise its own default.
    sql_level = logging.INFO if numeric <= logging.DEBUG else logging.WARNING
    logging.getLogger("sqlalchemy.engine").setLevel(sql_level)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # Off, so a reconfiguration (a test capturing logs) reaches loggers made earlier.
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
