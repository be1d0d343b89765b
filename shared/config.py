"""Settings shared by every process, from flags and ``REDKUBE_*`` environment variables.

Each process defines one pydantic settings class (a subclass of ``Settings``); flags
win over the environment, the environment over defaults. Nothing is read at import
time: ``load`` is called once in a process's entry point and passed down.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

S = TypeVar("S", bound="Settings")


def default_home() -> Path:
    return Path(os.environ.get("REDKUBE_HOME", str(Path.home() / ".redkube")))


class Settings(BaseModel):
    """What every process needs: where Redis is, the key prefix, its identity."""

    model_config = ConfigDict(extra="forbid")

    redis_url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "rk"
    token: str = ""
    log_level: str = "info"
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    home: Path = default_home()

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One ``--flag`` per field (underscores become dashes), all optional."""
        for name, field in cls.model_fields.items():
            flag = "--" + name.replace("_", "-")
            if field.annotation is bool:
                parser.add_argument(flag, dest=name, action="store_true", default=None)
            else:
                parser.add_argument(flag, dest=name, default=None, help=field.description)

    @classmethod
    def load(cls: type[S], args: argparse.Namespace | None = None, **overrides: Any) -> S:
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            env = os.environ.get(f"REDKUBE_{name.upper()}")
            if env is not None:
                values[name] = env
        if "redis_url" not in values and os.environ.get("REDIS_URL"):
            values["redis_url"] = os.environ["REDIS_URL"]
        if args is not None:
            values.update({k: v for k, v in vars(args).items() if k in cls.model_fields and v is not None})
        values.update(overrides)
        for secret in ("token", "redis_url"):  # "@FILE": read the value from a 0600 file
            if isinstance(values.get(secret), str) and values[secret].startswith("@"):
                values[secret] = Path(values[secret][1:]).read_text().strip()
        return cls.model_validate(values)
