"""structlog JSON logging: one line per event, always naming the component."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def configure(component: str, *, level: str = "info", **context: Any) -> structlog.stdlib.BoundLogger:
    """Send JSON lines to stderr and return a logger bound to ``component`` (and context)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, format="%(message)s")
    structlog.contextvars.bind_contextvars(component=component, **context)
    return structlog.get_logger()


def get(**context: Any) -> Any:
    return structlog.get_logger().bind(**context)
