"""Verify a Truceline ledger proof with nothing but the Python standard library.

A party holding a published daily root and an exported entry (``truceline ledger proof``, or the
API's ``.../proof``) runs::

    python -m truceline.ledger_verify proof.json --root <the day's published root>

or copies this one file anywhere and runs ``python ledger_verify.py proof.json``. It checks that

1. the entry's hash is SHA-256(previous entry's hash || the entry's body, byte for byte), so the
   body shown is the body that was recorded;
2. the entry's body names the same sequence number and day as the proof;
3. the Merkle inclusion path leads from the entry to the day's root (RFC 6962 / RFC 9162 tree:
   leaf = SHA-256(0x00 || entry hash), node = SHA-256(0x01 || left || right));
4. that root equals the published root given with ``--root`` (else only the root in the file).

Exit status 0 when every check holds, 1 otherwise. The functions are also the ledger's own
implementation (:mod:`truceline.store.ledger` imports them), so the server and the verifier
cannot disagree on what a hash is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from typing import Any, TypeGuard

__all__ = [
    "FORMAT",
    "GENESIS",
    "canonical_json",
    "entry_hash",
    "inclusion_path",
    "json_text",
    "leaf_hash",
    "main",
    "merkle_root",
    "root_from_path",
    "verify_proof",
]

FORMAT = "truceline-ledger-proof/1"
#: The "previous hash" of the first entry.
GENESIS = "0" * 64


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(value: Any) -> str:
    """The one serialisation that is hashed: sorted keys, no spaces, UTF-8, no NaN."""
    return _CANONICAL.encode(value)


def json_text(value: str) -> str:
    """A JSON string as :func:`canonical_json` writes it (plain ASCII needs no escaping)."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return json.dumps(value, ensure_ascii=False)


def entry_hash(prev_hash: str, body: str) -> str:
    """SHA-256(previous entry hash (32 bytes) || body (UTF-8)) as hex."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + body.encode("utf-8")).hexdigest()


def leaf_hash(entry_hash_hex: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(entry_hash_hex)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _mth(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 1:
        return leaves[0]
    k = _split(n)
    return _node(_mth(leaves[:k]), _mth(leaves[k:]))


def merkle_root(entry_hashes: Sequence[str]) -> str:
    """RFC 6962 Merkle tree hash over the entries' hashes, in order (hex)."""
    if not entry_hashes:
        return hashlib.sha256(b"").hexdigest()
    return _mth([leaf_hash(h) for h in entry_hashes]).hex()


def _path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*_path(index, leaves[:k]), _mth(leaves[k:])]
    return [*_path(index - k, leaves[k:]), _mth(leaves[:k])]


def inclusion_path(entry_hashes: Sequence[str], index: int) -> list[str]:
    """The audit path of leaf ``index`` (RFC 6962 PATH), leaf level first (hex)."""
    if not 0 <= index < len(entry_hashes):
        raise IndexError(f"leaf {index} of a tree of {len(entry_hashes)}")
    return [h.hex() for h in _path(index, [leaf_hash(h) for h in entry_hashes])]


def root_from_path(index: int, size: int, entry_hash_hex: str, path: Sequence[str]) -> str | None:
    """The root that ``path`` leads to from leaf ``index`` of ``size`` (RFC 9162 2.1.3.2), or None
    when the path has the wrong length for that position."""
    if not 0 <= index < size:
        return None
    fn, sn = index, size - 1
    r = leaf_hash(entry_hash_hex)
    for p_hex in path:
        p = bytes.fromhex(p_hex)
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return r.hex() if sn == 0 else None


def _hex64(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def verify_proof(doc: dict[str, Any], *, root: str | None = None) -> list[str]:
    """Every way ``doc`` fails to prove its entry (an empty list: the proof holds)."""
    problems: list[str] = []
    if doc.get("format") != FORMAT:
        return [f"not a {FORMAT} document (format: {doc.get('format')!r})"]
    entry = doc.get("entry") or {}
    body, prev, claimed = entry.get("body"), entry.get("prev_hash"), entry.get("entry_hash")
    if not isinstance(body, str) or not _hex64(prev) or not _hex64(claimed):
        return ["entry needs body (a string), prev_hash and entry_hash (64 hex digits each)"]
    actual = entry_hash(prev, body)
    if actual != claimed:
        problems.append(
            f"the entry's hash does not match its body: computed {actual}, recorded {claimed}"
        )
    try:
        content = json.loads(body)
    except json.JSONDecodeError as exc:
        content = {}
        problems.append(f"the body is not JSON ({exc})")
    if content.get("seq") != entry.get("seq"):
        problems.append(f"the body is entry {content.get('seq')}, the proof says {entry.get('seq')}")
    if str(content.get("time", ""))[:10] != doc.get("day"):
        problems.append(
            f"the body was recorded on {str(content.get('time'))[:10]}, not {doc.get('day')}"
        )
    index, size, path = doc.get("leaf_index"), doc.get("tree_size"), doc.get("path")
    if (
        not isinstance(index, int)
        or not isinstance(size, int)
        or not isinstance(path, list)
        or not all(_hex64(p) for p in path)
    ):
        return [*problems, "leaf_index and tree_size must be integers, path a list of 64-hex hashes"]
    computed_root = root_from_path(index, size, claimed, path)
    if computed_root is None:
        problems.append(f"the path has the wrong length for leaf {index} of {size}")
    elif computed_root != doc.get("root"):
        problems.append(f"the path leads to root {computed_root}, the proof says {doc.get('root')}")
    if root is not None and root.lower() != str(doc.get("root", "")).lower():
        problems.append(f"the proof's root {doc.get('root')} is not the published root {root}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m truceline.ledger_verify",
        description="Verify a Truceline ledger entry against its day's Merkle root "
        "(standard library only).",
    )
    parser.add_argument("proof", help="proof JSON file (truceline ledger proof ENTRY -o proof.json)")
    parser.add_argument("--root", help="the day's root as published to you (hex); strongly recommended")
    args = parser.parse_args(argv)
    try:
        with open(args.proof, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"cannot read {args.proof}: {exc}", file=sys.stderr)
        return 1
    problems = verify_proof(doc, root=args.root)
    entry = doc.get("entry", {})
    if problems:
        print(f"FAILED: entry {entry.get('seq')} of {doc.get('day')}")
        for p in problems:
            print(f"  - {p}")
        return 1
    against = (
        "the published root" if args.root else "the root in the file (give --root to compare with yours)"
    )
    print(
        f"OK: entry {entry.get('seq')} is leaf {doc['leaf_index']} of {doc['tree_size']} "
        f"on {doc['day']}; it leads to {doc['root']}, {against}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
