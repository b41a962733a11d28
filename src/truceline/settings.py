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
from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from truceline.errors import ValidationError
from truceline.io.limits import UploadLimits

__all__ = ["CotSettings", "Settings", "default_attachments_dir", "load_settings"]


FieldRole = Literal["admin", "analyst", "monitor", "sensor", "liaison"]
#: Roles a plain-TCP client may have: none that needs a party or administers (it proves nothing).
PlainRole = Literal["analyst", "monitor", "sensor"]


class CotSettings(BaseModel):
    """Where the TAK listeners run and how they treat what arrives.

    In a TOML settings file these go in a ``[cot]`` table; on the command line ``truceline serve
    --cot-tls-port 8089`` (mutual TLS, the default transport) or, for trusted networks only,
    ``--cot-port 8087 --cot-plain-networks 10.1.0.0/16 --cot-plain-role sensor``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Plain TCP listener (TAK convention: 8087); unset: off. Needs plain_networks "
        "and plain_role",
    )
    plain_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Networks (CIDR) that may use the plain TCP listener; a connection from "
        "elsewhere is closed at once",
    )
    plain_role: PlainRole | None = Field(
        default=None,
        description="Role of every plain-TCP client (it submits as this role; sensor may only "
        "submit and is sent nothing)",
    )
    tls_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="TLS listener with client certificates (8089); unset: off",
    )
    tls_cert: Path | None = Field(default=None, description="The server's certificate (PEM)")
    tls_key: Path | None = Field(default=None, description="The server's private key (PEM)")
    tls_ca: Path | None = Field(
        default=None, description="CA certificates (PEM) that sign the clients' certificates"
    )
    tls_role: FieldRole = Field(
        default="monitor",
        description="Role of a TLS client whose certificate's OU names no role",
    )
    agreement: str | None = Field(
        default=None, description="Agreement the events belong to (default: the only one registered)"
    )
    max_event_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest single CoT event")
    max_connection_bytes: int = Field(
        default=64 * 1024 * 1024, ge=4096, description="Most bytes one connection may send in its life"
    )
    max_clients: int = Field(
        default=256,
        ge=1,
        description="Most connections at once; past it a new one evicts the connection idle longest",
    )
    max_clients_per_address: int = Field(
        default=32,
        ge=1,
        description="Most connections from one address; past it a new one evicts that address's "
        "connection idle longest",
    )
    idle_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="A connection that sends no complete event (a position, a ping) for this long "
        "is closed",
    )
    read_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="An event (or a TLS handshake) must arrive complete within this once begun",
    )
    source_type: Literal["patrol", "observation_post", "camera", "uav"] = Field(
        default="patrol", description="Source type of sightings and free-form reports"
    )
    push_findings: bool = Field(
        default=True, description="Send findings as markers to the clients whose role may see them"
    )
    push_interval_s: float = Field(
        default=10.0, gt=0, le=3600, description="How often new and newly released findings are pushed"
    )
    simplify_m: float = Field(
        default=20.0, ge=0, description="Zone outlines sent to TAK are simplified to within this (m)"
    )

    @model_validator(mode="after")
    def _plain_needs_networks_and_role(self) -> CotSettings:
        if self.port is not None and (not self.plain_networks or self.plain_role is None):
            raise ValueError(
                "the plain TCP listener (cot.port) has no authentication, so it needs "
                "cot.plain_networks (who may connect) and cot.plain_role (what they may do); "
                "set both (--cot-plain-networks 10.1.0.0/16 --cot-plain-role sensor), or use "
                "the TLS listener (cot.tls_port) instead"
            )
        return self

    @property
    def enabled(self) -> bool:
        return self.port is not None or self.tls_port is not None


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
    ledger_key: Path | None = Field(
        default=None,
        description="The mission's Ed25519 key (`truceline ledger keygen`): days closed through "
        "the API are signed with it",
    )
    attachments_dir: Path | None = Field(
        default=None,
        description="Where attachments' bytes are kept (by SHA-256); unset: beside a SQLite "
        "database (`<name>-attachments/`), else `./truceline-attachments`",
    )
    index_cache: bool = Field(
        default=True,
        description="Keep the line's search tables (filled as `classify` meets new places) in "
        "`index_cache_dir` for the next process; results are the same without",
    )
    index_cache_dir: Path | None = Field(
        default=None,
        description="Where the line's search tables are kept; unset: "
        "$XDG_CACHE_HOME/truceline/line-index (or ~/.cache/truceline/line-index)",
    )
    index_cache_max_mb: int = Field(
        default=1024,
        ge=0,
        description="Largest size of `index_cache_dir` (MB; a line's tables are tens of MB): each "
        "write removes the least recently used files beyond it",
    )
    attachment_max_bytes: dict[str, int] = Field(
        default_factory=lambda: {
            "admin": 512 * 1024 * 1024,
            "analyst": 512 * 1024 * 1024,
            "monitor": 256 * 1024 * 1024,
        },
        description="Largest attachment each role may file (bytes); a role not named may file none",
    )
    attachment_chunk_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest chunk of a resumable upload (PATCH /uploads/{id}); 413 above",
    )
    attachment_upload_expiry_hours: float = Field(
        default=24,
        gt=0,
        description="A resumable upload not finished this many hours after it began is discarded "
        "(its partial bytes, under <attachments_dir>/.uploads, removed)",
    )
    ledger_checkpoint_minutes: float = Field(
        default=15,
        ge=0,
        description="Every this many minutes the server closes the ledger up to now (finished days "
        "get their roots, today a checkpoint), so proofs of today's entries are available; 0: never",
    )
    relink_minutes: float = Field(
        default=10,
        ge=0,
        description="Every this many minutes the server makes fusion's final pass (as `truceline "
        "relink`) of each closed day that needs one: a day whose end is the longest reporting "
        "delay past and which received reports since its last pass (up to 7 days back); 0: never",
    )
    token_cache_s: float = Field(
        default=0.5,
        ge=0,
        le=1.0,
        description="How long a worker remembers a token found valid: a token revoked (or changed) "
        "by another worker or the CLI is refused everywhere within this (0: look up every request)",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Server processes sharing the port (each with its own group-commit writer); "
        "use the number of cores for throughput. The TAK listeners need 1.",
    )
    uploads: UploadLimits = Field(
        default_factory=UploadLimits,
        description="What an uploaded or imported file may hold: an [uploads] table (nesting, "
        "YAML aliases, archive expansion, features, vertices, CSV cells, rows)",
    )
    cot: CotSettings = Field(
        default_factory=CotSettings,
        description="Cursor-on-Target (TAK) listeners: a [cot] table (README, TAK section)",
    )
    fusion: dict[str, Any] = Field(
        default_factory=dict,
        description="Fusion's parameters over every agreement's `fusion:` section (a [fusion] "
        "table; e.g. link_threshold, offer_threshold, [fusion.sources.patrol] clock_sigma_s): "
        "the fields given here win, the others stay the agreement's (README, Fusion)",
    )

    @model_validator(mode="after")
    def _fusion_fields(self) -> Settings:
        from truceline.core.fusion import FusionSettings

        try:
            FusionSettings().overridden(self.fusion)
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise ValueError(f"fusion.{where}: {err['msg']}") from None
        return self


def default_attachments_dir(db: str) -> Path:
    """Where attachments go when ``attachments_dir`` is unset: beside a SQLite file
    (``truceline.db`` -> ``truceline-attachments/``), else ``./truceline-attachments``."""
    if "://" not in db or db.startswith("sqlite:///"):
        path = Path(db.removeprefix("sqlite:///"))
        if path.name and path.name != ":memory:":
            return path.with_name(f"{path.stem}-attachments")
    return Path("truceline-attachments")


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
        Values given explicitly (``None`` values are ignored, so unset CLI options fall through;
        a ``cot`` mapping is merged into the lower sources' ``cot`` key by key).
    """
    path = config_file or os.environ.get("TRUCELINE_CONFIG")
    values: dict[str, Any] = _read_toml(Path(path)) if path else {}
    for layer in (EnvSettingsSource(Settings)(), {k: v for k, v in overrides.items() if v is not None}):
        for k, v in layer.items():
            # A [cot] table is merged key by key: `--cot-port` keeps the file's certificates.
            if k == "cot" and isinstance(v, dict) and isinstance(values.get(k), dict):
                v = {**values[k], **v}
            values[k] = v
    try:
        return Settings(**values)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"])
        raise ValidationError(
            f"setting {name}: {err['msg'].removeprefix('Value error, ')}",
            field=name,
            value=err.get("input"),
            fix="see the settings table in README.md (server section)",
        ) from exc
