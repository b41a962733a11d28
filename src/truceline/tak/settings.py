"""Settings of the Cursor-on-Target listeners (the ``cot`` member of the server's settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CotSettings"]

FieldRole = Literal["admin", "analyst", "monitor", "sensor", "liaison"]


class CotSettings(BaseModel):
    """Where the TAK listeners run and how they treat what arrives.

    In a TOML settings file these go in a ``[cot]`` table; on the command line ``truceline serve
    --cot-port 8087 --cot-tls-port 8089``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: int | None = Field(
        default=None, ge=1, le=65535, description="Plain TCP listener (TAK convention: 8087); unset: off"
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
    tcp_role: FieldRole = Field(
        default="sensor",
        description="Role of every plain-TCP client (no authentication: sensor may only submit)",
    )
    agreement: str | None = Field(
        default=None, description="Agreement the events belong to (default: the only one registered)"
    )
    max_event_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest single CoT event")
    max_connection_bytes: int = Field(
        default=64 * 1024 * 1024, ge=4096, description="Most bytes one connection may send in its life"
    )
    max_clients: int = Field(default=256, ge=1, description="Most connections at once")
    unknown_ce_m: float = Field(
        default=250.0,
        gt=0,
        le=400_000,
        description="CE90 radius (m) assumed when an event's ce is the CoT 'unknown' value 9999999",
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

    @property
    def enabled(self) -> bool:
        return self.port is not None or self.tls_port is not None
