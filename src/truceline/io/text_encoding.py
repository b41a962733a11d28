"""Which text encoding a data file is in: UTF-8 unless the bytes say otherwise.

Field offices' spreadsheets are often saved in the system's legacy code page: Windows-1251 in
Ukraine and Russia, Windows-1252 (Latin-1) in western Europe. Read as UTF-8, such a file either
fails at its first accented letter or, with the byte escaped, loses every name in it. The rule:

- a byte-order mark decides (UTF-8, UTF-16 LE or BE);
- bytes that are valid UTF-8 are UTF-8;
- otherwise the non-ASCII runs are looked at in a sample of the file. Cyrillic words are runs of
  several letters standing alone (``Київ``, ``обстріл``); western European words carry one accented
  letter inside an ASCII word (``Café``, ``Straße``); a one-letter word (``в``, ``à``) tells
  neither. When there are at least :data:`MIN_RUNS` telling runs and :data:`AGREEMENT` of them
  agree, that code page is used;
- a handful of stray bytes is too little to decide: the file is read as UTF-8 and only the records
  holding those bytes are refused (they name the field; ``--encoding`` reads the file otherwise);
- enough non-UTF-8 text that fits neither code page is refused as a whole, naming the first byte
  that is not UTF-8 and ``--encoding``.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from truceline.errors import ValidationError

__all__ = ["AGREEMENT", "MIN_RUNS", "SAMPLE_BYTES", "Detected", "detect_encoding", "open_text"]

#: Bytes read from the start of a file to decide its encoding.
SAMPLE_BYTES = 1 << 20
#: Non-ASCII runs needed before a legacy code page is chosen over UTF-8.
MIN_RUNS = 3
#: Share of the runs that must read as the chosen code page's words.
AGREEMENT = 0.8

_NAMES = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 (with BOM)",
    "utf-16": "UTF-16",
    "cp1251": "Windows-1251 (Cyrillic)",
    "cp1252": "Windows-1252 (Latin-1)",
    "latin-1": "ISO-8859-1 (Latin-1)",
}
_RUN = re.compile(rb"[\x80-\xff]+")
_ASCII_LETTER = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class Detected:
    """An encoding and how it was chosen.

    Attributes
    ----------
    codec
        The Python codec name (``utf-8-sig``, ``utf-16``, ``cp1251``, ``cp1252`` ...).
    how
        ``"given"`` (``--encoding``), ``"bom"``, ``"utf-8"`` (valid or too little to decide) or
        ``"detected"`` (a legacy code page chosen from the text).
    """

    codec: str
    how: str

    @property
    def name(self) -> str:
        """What to call it in messages (``Windows-1251 (Cyrillic)``)."""
        return _NAMES.get(self.codec, self.codec)


def _cyrillic_word(text: str) -> bool:
    return len(text) >= 2 and all("\u0400" <= ch <= "\u04ff" for ch in text)


def _latin_letters(text: str) -> bool:
    return all(ch.isalpha() and not ("\u0400" <= ch <= "\u04ff") for ch in text)


def _first_bad_byte(sample: bytes) -> tuple[int, int, int]:
    """(line, column, byte value) of the first byte that is not UTF-8 (lines from 1)."""
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = exc.start
    else:  # pragma: no cover - only called on a sample that failed
        at = 0
    line = sample.count(b"\n", 0, at) + 1
    col = at - (sample.rfind(b"\n", 0, at) + 1) + 1
    return line, col, sample[at]


def detect_encoding(sample: bytes, *, name: str = "the file") -> Detected:
    """The encoding of a file from its first bytes (see the module's rule).

    Raises
    ------
    ValidationError
        Enough non-UTF-8 text that reads as neither Windows-1251 nor Windows-1252: the message
        names the first byte that is not UTF-8 and the ``--encoding`` option.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return Detected("utf-8-sig", "bom")
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return Detected("utf-16", "bom")
    try:
        sample.decode("utf-8")
        return Detected("utf-8", "utf-8")
    except UnicodeDecodeError as exc:
        # a multi-byte sequence cut by the sample's end is still UTF-8
        if exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data":
            return Detected("utf-8", "utf-8")
    cyr = lat = decisive = 0
    for m in _RUN.finditer(sample):
        raw = m.group()
        before = sample[m.start() - 1] if m.start() else 0
        after = sample[m.end()] if m.end() < len(sample) else 0
        inside_word = before in _ASCII_LETTER or after in _ASCII_LETTER
        if len(raw) == 1 and not inside_word:
            continue  # a one-letter word ("в", "à") reads well in either code page
        decisive += 1
        if not inside_word and _cyrillic_word(raw.decode("cp1251", "replace")):
            cyr += 1
        elif inside_word and _latin_letters(raw.decode("cp1252", "replace")):
            lat += 1
    if decisive < MIN_RUNS:
        return Detected("utf-8", "utf-8")
    if cyr >= AGREEMENT * decisive:
        return Detected("cp1251", "detected")
    if lat >= AGREEMENT * decisive:
        try:
            sample.decode("cp1252")
            return Detected("cp1252", "detected")
        except UnicodeDecodeError:
            return Detected("latin-1", "detected")
    line, col, byte = _first_bad_byte(sample)
    raise ValidationError(
        f"{name}: not UTF-8 (byte 0x{byte:02X} at line {line}, column {col}), and its text reads "
        "as neither Windows-1251 (Cyrillic) nor Windows-1252 (Latin-1)",
        field="encoding",
        fix="save the file as UTF-8, or name its encoding with --encoding (e.g. --encoding cp1251, "
        "--encoding latin-1)",
    )


def open_text(path: Path, encoding: str | None = None) -> tuple[IO[str], Detected]:
    """Open ``path`` for reading as text (``newline=""`` for csv) in its encoding.

    ``encoding`` (``--encoding``) is used as given; otherwise it is detected from the first
    :data:`SAMPLE_BYTES`. UTF-8 is read with ``surrogateescape``: a stray byte becomes a lone
    surrogate that the record's validation refuses, in that record alone.
    """
    if encoding:
        try:
            codec = codecs.lookup(encoding).name
        except LookupError as exc:
            raise ValidationError(
                f"--encoding {encoding!r}: not a text encoding Python knows",
                field="encoding",
                fix="use e.g. utf-8, cp1251, cp1252, latin-1 or utf-16",
            ) from exc
        det = Detected(codec, "given")
    else:
        with path.open("rb") as fh:
            det = detect_encoding(fh.read(SAMPLE_BYTES), name=str(path))
    errors = "surrogateescape" if det.codec in ("utf-8", "utf-8-sig") else "strict"
    codec = "utf-8-sig" if det.codec == "utf-8" else det.codec  # a BOM is never data
    return path.open(newline="", encoding=codec, errors=errors), det
