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
4. that root equals the published root given with ``--root`` (else only the root in the file);
5. when the day's root is signed (``truceline ledger keygen``, then ``ledger close --key``), that
   the Ed25519 signature over it holds for the mission's public key (``--public-key``). Checking
   a signature needs the ``cryptography`` package; without it the verifier says it did not check.

Some values an entry records are not everyone's to see (a finding's incident key and its
report's content hash): the entry holds a salted commitment to each instead (``commitments``:
SHA-256(opening key || the value's canonical JSON), the opening key SHA-256(salt || 0x00 ||
name), the salt kept by the mission). A proof for a party shows the commitments only, and still
verifies; a proof for the mission's staff adds ``openings`` (each value with its opening key),
which the verifier checks against the commitments. Opening one value reveals nothing of another.

With ``--attachment FILE`` (an evidence file and the proof of its ``attachment:<pk>`` entry) it
also checks that the file's bytes are the ones the entry recorded: their SHA-256 and size as
filed, or the SHA-256 of the copy released to the parties (location metadata removed), which the
release's entry records.

``python -m truceline.ledger_verify --roots roots.json --public-key HEX`` checks the signatures of
the daily roots a party holds (``truceline ledger roots -o roots.json``).

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
    "check_signature",
    "commitment",
    "entry_hash",
    "inclusion_path",
    "json_text",
    "leaf_hash",
    "main",
    "merkle_root",
    "opening_key",
    "root_from_path",
    "root_message",
    "signatures_available",
    "verify_attachment",
    "verify_proof",
    "verify_root_signatures",
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


def opening_key(salt: str, name: str) -> str:
    """The key that opens the commitment to value ``name`` made with ``salt`` (hex):
    SHA-256(salt || 0x00 || name). One-way, so showing it for one value hides the others'."""
    return hashlib.sha256(bytes.fromhex(salt) + b"\x00" + name.encode("utf-8")).hexdigest()


def commitment(key: str, value: Any) -> str:
    """The commitment to ``value`` under opening key ``key`` (hex):
    SHA-256(key || canonical_json(value))."""
    return hashlib.sha256(bytes.fromhex(key) + canonical_json(value).encode("utf-8")).hexdigest()


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


#: What a day's signature is over (:func:`root_message`).
ROOT_SIGNATURE = "truceline-ledger-root/1"


def root_message(day: str, root: str, n_entries: int) -> bytes:
    """The bytes the mission signs for a closed day: the format, the day, its root and its size."""
    return f"{ROOT_SIGNATURE}\n{day}\n{root}\n{int(n_entries)}".encode()


def check_signature(public_key_hex: str, message: bytes, signature_hex: str) -> bool | None:
    """Whether an Ed25519 signature holds; None when the ``cryptography`` package is not there
    (the standard library has no Ed25519)."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        return None
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_root_signatures(
    roots: Sequence[dict[str, Any]], *, public_key: str | None = None
) -> tuple[list[str], int, bool]:
    """Check each root's signature: (problems, roots whose signature holds, whether signatures
    could be checked at all). A root without a signature is a problem when ``public_key`` is
    given (the mission signs every day it closes); a root signed by another key always is."""
    problems: list[str] = []
    good = 0
    for r in roots:
        day, root, n = r.get("day"), r.get("root"), r.get("n_entries")
        sig, key = r.get("signature"), r.get("public_key")
        if not isinstance(sig, str) or not isinstance(key, str):
            if public_key is not None:
                problems.append(f"day {day}: its root is not signed")
            continue
        if public_key is not None and key.lower() != public_key.lower():
            problems.append(
                f"day {day}: signed by key {key[:16]}..., not the mission's {public_key[:16]}..."
            )
            continue
        if not isinstance(root, str) or not isinstance(n, int):
            problems.append(f"day {day}: needs its root and n_entries")
            continue
        held = check_signature(key, root_message(str(day), root, n), sig)
        if held is None:
            return problems, good, False
        if held:
            good += 1
        else:
            problems.append(f"day {day}: the signature over its root does not hold")
    return problems, good, True


def _hex64(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def verify_proof(
    doc: dict[str, Any], *, root: str | None = None, public_key: str | None = None
) -> list[str]:
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
    problems += _check_openings(doc.get("openings"), content.get("content"))
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
    signed = doc.get("root_signature")
    if isinstance(signed, dict):
        sig_problems, _, _ = verify_root_signatures(
            [{**signed, "day": doc.get("day"), "root": doc.get("root")}], public_key=public_key
        )
        problems += sig_problems
    elif public_key is not None:
        problems.append(f"the root of {doc.get('day')} is not signed")
    return problems


def _check_openings(openings: Any, content: Any) -> list[str]:
    """Each opened value against the commitment the entry's content holds to it."""
    if openings is None:
        return []
    held = content.get("commitments") if isinstance(content, dict) else None
    if not isinstance(openings, dict) or not isinstance(held, dict):
        return ["the proof opens values, but its entry holds no commitments"]
    problems = []
    for name, opened in openings.items():
        key = opened.get("key") if isinstance(opened, dict) else None
        if not _hex64(key) or "value" not in opened:
            problems.append(f"the opening of {name!r} needs a value and a key (64 hex digits)")
        elif name not in held:
            problems.append(f"the entry holds no commitment to {name!r}")
        elif commitment(key, opened["value"]) != held[name]:
            problems.append(f"the opened {name!r} ({opened['value']!r}) is not the value committed to")
    return problems


def verify_attachment(doc: dict[str, Any], data: bytes) -> tuple[list[str], str]:
    """Whether ``data`` is the file an ``attachment`` entry (the proof ``doc``'s) records:
    (problems, what it is: "the file as filed" or "the copy released ...")."""
    entry = doc.get("entry") or {}
    try:
        body = json.loads(entry.get("body") or "")
    except (TypeError, json.JSONDecodeError):
        return ["the proof's entry has no readable body"], ""
    content = body.get("content") if isinstance(body, dict) else None
    if body.get("kind") != "attachment" or not isinstance(content, dict):
        return [f"the proof's entry is a {body.get('kind')!r} entry, not an attachment's"], ""
    sha = hashlib.sha256(data).hexdigest()
    what = f"attachment {content.get('attachment')} of incident {content.get('incident')}"
    if sha == content.get("sha256"):
        if len(data) != content.get("size_bytes"):
            return [f"the file is {len(data)} bytes; the entry records {content.get('size_bytes')}"], ""
        return [], (
            f"the file is {what} as filed by {content.get('filed_by')} at {content.get('filed_at')} "
            f"(SHA-256 {sha}, report hash {content.get('report_hash')})"
        )
    if content.get("released") and sha == content.get("released_sha256"):
        return [], (
            f"the file is the copy of {what} released to the parties at "
            f"{content.get('released_at')}, location metadata removed (SHA-256 {sha}; filed as "
            f"{content.get('sha256')})"
        )
    also = (
        f" or, as released, {content.get('released_sha256')}"
        if content.get("released") and content.get("released_sha256") != content.get("sha256")
        else ""
    )
    return [
        f"the file's SHA-256 is {sha}; the entry records {content.get('sha256')} for {what}{also}: "
        "it is not the file recorded"
    ], ""


def signatures_available() -> bool:
    """Whether this Python can check Ed25519 signatures (the ``cryptography`` package)."""
    try:
        import cryptography.hazmat.primitives.asymmetric.ed25519  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m truceline.ledger_verify",
        description="Verify a Truceline ledger entry against its day's Merkle root, or the "
        "signatures of the daily roots you hold (standard library; signatures need the "
        "cryptography package).",
    )
    parser.add_argument(
        "proof", nargs="?", help="proof JSON file (truceline ledger proof ENTRY -o proof.json)"
    )
    parser.add_argument("--root", help="the day's root as published to you (hex); strongly recommended")
    parser.add_argument(
        "--roots",
        help="the daily roots you hold (JSON list): their signatures are checked, and a proof's "
        "root must be one of them",
    )
    parser.add_argument("--public-key", help="the mission's Ed25519 public key (hex), as published")
    parser.add_argument(
        "--attachment",
        metavar="FILE",
        help="an evidence file: check its bytes against the proof's attachment entry",
    )
    args = parser.parse_args(argv)
    if args.proof is None and args.roots is None:
        parser.error("give a proof file, --roots FILE, or both")
    if args.attachment is not None and args.proof is None:
        parser.error("--attachment needs the proof of the attachment's entry")
    status = 0
    root = args.root
    if args.roots is not None:
        status = max(status, _check_roots(args.roots, args.public_key))
        if args.proof is not None and root is None:  # the proof's root must be one you hold
            root = _held_root(args.proof, args.roots)
            if root is None:
                return 1
    if args.proof is not None:
        status = max(status, _check_proof(args.proof, root, args.public_key))
    if args.attachment is not None:
        status = max(status, _check_attachment(args.proof, args.attachment))
    return status


def _held_root(proof: str, roots: str) -> str | None:
    """The root among ``roots`` (the daily roots and checkpoints a party holds) that the proof
    claims, or ``None`` after saying why there is none."""
    try:
        with open(proof, encoding="utf-8") as fh:
            claimed = str(json.load(fh).get("root", "")).lower()
        with open(roots, encoding="utf-8") as fh:
            held = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        print(f"cannot read {proof} or {roots}: {exc}", file=sys.stderr)
        return None
    if isinstance(held, list):
        for r in held:
            if isinstance(r, dict) and str(r.get("root", "")).lower() == claimed:
                return claimed
    n = len(held) if isinstance(held, list) else 0
    print(
        f"FAILED: the proof's root {claimed} is none of the {n} roots in {roots}: fetch the newer "
        "roots (a checkpoint made after yours), or the proof is forged"
    )
    return None


def _check_attachment(proof: str, path: str) -> int:
    try:
        with open(proof, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        print(f"cannot read {proof}: {exc}", file=sys.stderr)
        return 1
    try:
        with open(path, "rb") as fb:
            data = fb.read()
    except OSError as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 1
    problems, what = verify_attachment(doc, data)
    if problems:
        print(f"FAILED: {path}")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"OK: {path}: {what}")
    return 0


def _check_roots(path: str, public_key: str | None) -> int:
    try:
        with open(path, encoding="utf-8") as fh:
            roots = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 1
    if not isinstance(roots, list) or not all(isinstance(r, dict) for r in roots):
        print(f"{path} holds no list of roots", file=sys.stderr)
        return 1
    problems, good, checked = verify_root_signatures(roots, public_key=public_key)
    if not checked:
        print(
            f"NOT CHECKED: the {len(roots)} roots' signatures need the cryptography package "
            "(pip install cryptography); the standard library has no Ed25519"
        )
        return 1
    if problems:
        print(f"FAILED: {len(problems)} of {len(roots)} roots")
        for p in problems:
            print(f"  - {p}")
        return 1
    against = "the mission's key you gave" if public_key else "the key in the file (give --public-key)"
    print(f"OK: {good} of {len(roots)} roots signed, every signature holds for {against}")
    return 0


def _check_proof(path: str, root: str | None, public_key: str | None) -> int:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 1
    problems = verify_proof(doc, root=root, public_key=public_key)
    entry = doc.get("entry", {})
    if problems:
        print(f"FAILED: entry {entry.get('seq')} of {doc.get('day')}")
        for p in problems:
            print(f"  - {p}")
        return 1
    against = (
        "the published root" if root else "the root in the file (give --root to compare with yours)"
    )
    signed = ""
    if isinstance(doc.get("root_signature"), dict):
        signed = (
            "; the root's signature holds"
            if signatures_available()
            else "; the root's signature was NOT checked (install the cryptography package)"
        )
    opened = doc.get("openings")
    if isinstance(opened, dict) and opened:
        values = ", ".join(f"{k} = {v.get('value')!r}" for k, v in sorted(opened.items()))
        signed += f"; the committed values opened hold ({values})"
    print(
        f"OK: entry {entry.get('seq')} is leaf {doc['leaf_index']} of {doc['tree_size']} "
        f"on {doc['day']}; it leads to {doc['root']}, {against}{signed}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
