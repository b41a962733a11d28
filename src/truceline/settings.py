"""Server settings: one object, built once (by ``truceline serve`` or a test) and passed in.

Sources, highest priority first: explicit values (command-line options), environment variables
``TRUCELINE_<NAME>``, a TOML file (``--config`` or ``TRUCELINE_CONFIG``), the defaults below.
Nothing here is read at import time.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import Field
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from truceline.errors import ValidationError
from truceline.tak.settings import CotSettings

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """Everything the mission server can be told."""

    model_config = SettingsConfigDict(env_prefix="TRUCELINE_", extra="forbid", frozen=True)

    db: str = Field(
        default="truceline.db",
        description="A SQLite file path, or a SQLAlchemy URL such as postgresql+psycopg://u@host/db",
    )
    host: str = Field(default="127.0.0.1", description="Interface to listen on")
    port: int = Field(default=8000, ge=1, le=65535)
    agreements: list[Path] = Field(
        default_factory=list, description="Agreement folders registered (or refreshed) at start"
    )
    max_request_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above)"
    )
    max_batch: int = Field(default=5000, ge=1, description="Most incidents in one batch request")
    max_page: int = Field(default=1000, ge=1, description="Most items in one page of a list")
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        default="FULL",
        description="SQLite fsync policy: FULL survives power loss, NORMAL only a crash of the process",
    )
    anonymous_public: bool = Field(
        default=True, description="Requests without a token act as the `public` role"
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Server processes sharing the port (each with its own group-commit writer); "
        "use the number of cores for throughput. The TAK listeners need 1.",
    )
    cot: CotSettings = Field(
        default_factory=CotSettings,
        description="Cursor-on-Target (TAK) listeners: a [cot] table (README, TAK section)",
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValidationError(
            f"config file {path} not found",
            field="config",
            value=str(path),
            fix="give an existing TOML file or unset TRUCELINE_CONFIG",
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(
            f"config file {path} is not valid TOML ({exc})",
            field="config",
            value=str(path),
            fix="fix the TOML syntax",
        ) from exc
    # Accept both a flat file and one with a [server] table.
    server = data.pop("server", {})
    return {**data, **server}


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings: overrides > environment > config file > defaults.

    Parameters
    ----------
    config_file
        A TOML file with the same keys as :class:`Settings`; default ``$TRUCELINE_CONFIG``.
    **overrides
        Values given explicitly (``None`` values are ignored, so unset CLI options fall through).
    """
    path = config_file or os.environ.get("TRUCELINE_CONFIG")
    values: dict[str, Any] = _read_toml(Path(path)) if path else {}
    values.update(EnvSettingsSource(Settings)())
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"])
        raise ValidationError(
            f"setting {name}: {err['msg']}",
            field=name,
            value=err.get("input"),
            fix="see the settings table in README.md (server section)",
        ) from exc
