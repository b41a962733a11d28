"""The mission's signing key for the ledger's daily roots (Ed25519).

``truceline ledger keygen -o mission.key`` makes one (PKCS#8 PEM, readable by its owner only) and
prints its public key, which the mission publishes to the parties and prints on every report;
``truceline ledger close --key mission.key`` (or the server's ``ledger_key`` setting) signs each
day it closes. A party checks the signatures with ``python -m truceline.ledger_verify --roots``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from truceline.errors import ConflictError, ValidationError

__all__ = ["Signer", "keygen", "load_signer", "public_key_of"]


@dataclass(frozen=True, slots=True)
class Signer:
    """Signs with the mission's key; ``public_key`` in hex (32 bytes)."""

    key: Ed25519PrivateKey
    public_key: str

    def __call__(self, message: bytes) -> tuple[str, str]:
        """(public key, signature), both hex."""
        return self.public_key, self.key.sign(message).hex()


def public_key_of(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def keygen(path: Path, *, overwrite: bool = False) -> str:
    """Write a new private key to ``path`` (mode 0600); its public key (hex)."""
    if path.exists() and not overwrite:
        raise ConflictError(
            f"{path} exists",
            field="output",
            value=str(path),
            fix="a mission keeps one key: give another path, or --force to replace it",
        )
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return public_key_of(key)


def load_signer(path: Path) -> Signer:
    """The signer of the key in ``path`` (as :func:`keygen` writes it)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ValidationError(
            f"cannot read the ledger key {path}: {exc.strerror}",
            field="key",
            value=str(path),
            fix="make one with `truceline ledger keygen -o FILE`",
        ) from None
    except ValueError:
        raise ValidationError(
            f"{path} is not a PEM private key",
            field="key",
            value=str(path),
            fix="give the file `truceline ledger keygen` wrote",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValidationError(
            f"{path} is not an Ed25519 key", field="key", value=str(path), fix="use `ledger keygen`"
        )
    return Signer(key, public_key_of(key))
