"""Bounds on what an uploaded or imported file may cost to read.

An agreement upload (``agreement.yaml``, GeoJSON, KML/KMZ, GDAL formats) and an incident import
file (CSV, GeoJSON) are untrusted: a few hundred bytes of YAML aliases can expand to millions of
nodes ("billion laughs"), a KMZ of a few hundred KiB can unpack to gigabytes, deeply nested JSON
or YAML exhausts the parser's stack. Each reader here checks its bound *before* the work it bounds
and refuses with :class:`LimitError`, whose message names the limit and the setting that holds it
(``[uploads]`` in the server's settings, :class:`UploadLimits`); the callers add the file's name.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import defusedxml.ElementTree as SafeElementTree
import numpy as np
import yaml
from defusedxml import DefusedXmlException
from pydantic import BaseModel, ConfigDict, Field

from truceline.errors import ValidationError

_T = TypeVar("_T")

__all__ = [
    "DEFAULT_LIMITS",
    "LimitError",
    "UploadLimits",
    "XmlRefusedError",
    "bounded_csv",
    "check_json_depth",
    "check_xml",
    "check_zip",
    "load_json",
    "load_yaml",
    "looks_like_xml",
    "looks_like_zip",
    "open_zip",
    "read_zip_member",
    "too_many_rows",
]


class UploadLimits(BaseModel):
    """What one uploaded or imported file may hold (``[uploads]`` in the settings file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_file_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Largest single file, after unpacking from an archive (a KMZ's KML)",
    )
    max_expanded_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Most bytes an archive (KMZ, zip) unpacks to"
    )
    max_expansion_ratio: float = Field(
        default=100.0,
        ge=1,
        description="Most an archive may expand (unpacked / packed size) once it unpacks past 1 MiB",
    )
    max_archive_members: int = Field(default=1000, ge=1, description="Most files in one archive")
    max_depth: int = Field(
        default=64, ge=4, le=500, description="Deepest nesting of JSON, YAML or XML (levels)"
    )
    max_yaml_aliases: int = Field(
        default=1000, ge=0, description="Most YAML aliases (*name) in agreement.yaml"
    )
    max_yaml_nodes: int = Field(
        default=100_000,
        ge=100,
        description="Most YAML nodes agreement.yaml holds once its aliases are expanded",
    )
    max_features: int = Field(default=50_000, ge=1, description="Most features in one geometry file")
    max_vertices: int = Field(
        default=2_000_000, ge=100, description="Most vertices in one geometry file"
    )
    max_csv_cell_chars: int = Field(
        default=64 * 1024, ge=1024, description="Longest CSV cell of an incident import file"
    )
    max_import_rows: int = Field(
        default=1_000_000, ge=1, description="Most records in one incident import file"
    )


#: The limits when the settings give none (the command line reading a folder, a test).
DEFAULT_LIMITS = UploadLimits()
_MIB = 1024 * 1024


class LimitError(ValueError):
    """A file over one of the :class:`UploadLimits`; the message names the limit and its setting."""

    def __init__(self, what: str, setting: str, limit: float) -> None:
        self.setting = f"uploads.{setting}"
        self.limit = limit
        shown = int(limit) if float(limit).is_integer() else limit
        self.message = f"{what}; the limit is {shown} (setting {self.setting})"
        super().__init__(self.message)


# -- JSON -----------------------------------------------------------------------------------------

_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def check_json_depth(data: bytes | str, limits: UploadLimits = DEFAULT_LIMITS) -> None:
    """Refuse JSON nested deeper than ``limits.max_depth`` (before the parser recurses into it).

    Brackets counted regardless of strings bound the depth from above (vectorised); only a file
    that this bound does not clear is scanned token by token, stopping at the first level too deep.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    a = np.frombuffer(raw, dtype=np.uint8)
    step = ((a == 0x5B) | (a == 0x7B)).astype(np.int32) - ((a == 0x5D) | (a == 0x7D))
    if step.size == 0 or int(np.cumsum(step).max()) <= limits.max_depth:
        return
    depth = 0
    for m in _JSON_TOKENS.finditer(raw):
        c = m.group()
        if c in (b"[", b"{"):
            depth += 1
            if depth > limits.max_depth:
                raise LimitError(
                    f"nested more than {limits.max_depth} levels deep", "max_depth", limits.max_depth
                )
        elif c in (b"]", b"}"):
            depth -= 1


def load_json(data: bytes | str, limits: UploadLimits = DEFAULT_LIMITS) -> Any:
    """``json.loads`` after :func:`check_json_depth`."""
    check_json_depth(data, limits)
    return json.loads(data)


# -- CSV ------------------------------------------------------------------------------------------


def bounded_csv(rows: Iterator[_T], path: Path, limits: UploadLimits) -> Iterator[_T]:
    """The rows of a CSV reader (any generator over one), within the limits' cell length and row
    count; a file over either is refused whole with a :class:`ValidationError` naming the limit."""
    # csv's bound on a cell is the process's: set for this file, put back after
    before = csv.field_size_limit(limits.max_csv_cell_chars)
    try:
        for i, row in enumerate(rows, start=1):
            if i > limits.max_import_rows:
                raise too_many_rows(path, limits)
            yield row
    except csv.Error as exc:
        # the reader stops at a cell over the bound: what follows it cannot be read reliably
        raise ValidationError(
            f"{path}: {exc}; a cell may hold at most {limits.max_csv_cell_chars} characters "
            "(setting uploads.max_csv_cell_chars)",
            field="uploads.max_csv_cell_chars",
            fix="check the file's quoting (an unclosed quote makes one huge cell), or split the "
            "long text",
        ) from exc
    finally:
        csv.field_size_limit(before)


def too_many_rows(path: Path, limits: UploadLimits) -> ValidationError:
    return ValidationError(
        f"{path}: more than {limits.max_import_rows} records (setting uploads.max_import_rows)",
        field="uploads.max_import_rows",
        fix="split the file",
    )


# -- YAML -----------------------------------------------------------------------------------------


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting while it composes: depth, aliases and expanded nodes.

    An alias costs what its anchor's node holds once expanded (so ten levels of ten aliases cost
    10^10, not 100); a node that refers to itself (``&a [*a]``) is refused, as nothing could print
    or walk it.
    """

    def __init__(self, stream: str, limits: UploadLimits) -> None:
        super().__init__(stream)
        self._limits = limits
        self._depth = 0
        self._aliases = 0
        self._nodes = 0
        self._weight: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        lim = self._limits
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > lim.max_yaml_aliases:
                raise LimitError(
                    f"more than {lim.max_yaml_aliases} aliases", "max_yaml_aliases", lim.max_yaml_aliases
                )
            anchor = self.peek_event().anchor  # type: ignore[no-untyped-call]
            target = self.anchors.get(anchor)
            if target is not None and id(target) not in self._weight:
                raise LimitError(
                    f"the alias *{anchor} refers to the node that holds it (a loop)",
                    "max_yaml_nodes",
                    lim.max_yaml_nodes,
                )
            node = super().compose_node(parent, index)
            self._add(self._weight.get(id(node), 1))
            return node
        self._depth += 1
        if self._depth > lim.max_depth:
            raise LimitError(f"nested more than {lim.max_depth} levels deep", "max_depth", lim.max_depth)
        try:
            before = self._nodes
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._add(1)
        # what the node holds once expanded: everything counted since it began, itself included
        self._weight[id(node)] = self._nodes - before
        return node

    def _add(self, n: int) -> None:
        self._nodes += n
        if self._nodes > self._limits.max_yaml_nodes:
            raise LimitError(
                f"more than {self._limits.max_yaml_nodes} nodes once its aliases are expanded",
                "max_yaml_nodes",
                self._limits.max_yaml_nodes,
            )


def load_yaml(text: str, limits: UploadLimits = DEFAULT_LIMITS) -> Any:
    """``yaml.safe_load`` bounded by the limits' depth, aliases and expanded node count."""
    loader = _BoundedLoader(text, limits)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


# -- archives -------------------------------------------------------------------------------------


def check_zip(z: zipfile.ZipFile, packed: int, limits: UploadLimits = DEFAULT_LIMITS) -> None:
    """Refuse an archive with too many members or whose headers say it unpacks too far."""
    infos = z.infolist()
    if len(infos) > limits.max_archive_members:
        raise LimitError(
            f"the archive holds {len(infos)} files", "max_archive_members", limits.max_archive_members
        )
    total = sum(i.file_size for i in infos)
    if total > limits.max_expanded_bytes:
        raise LimitError(
            f"the archive unpacks to {total} bytes", "max_expanded_bytes", limits.max_expanded_bytes
        )
    if total > _MIB and total > limits.max_expansion_ratio * max(packed, 1):
        raise LimitError(
            f"the archive unpacks {total / max(packed, 1):.0f} times its size ({packed} -> {total} "
            "bytes)",
            "max_expansion_ratio",
            limits.max_expansion_ratio,
        )


def read_zip_member(
    z: zipfile.ZipFile, info: zipfile.ZipInfo, limits: UploadLimits = DEFAULT_LIMITS
) -> bytes:
    """A member's bytes, reading at most one byte past the bound: lying headers unpack no further."""
    bound = min(limits.max_file_bytes, limits.max_expanded_bytes)
    with z.open(info) as fh:
        data = fh.read(bound + 1)
    if len(data) > bound:
        setting = "max_file_bytes" if bound == limits.max_file_bytes else "max_expanded_bytes"
        raise LimitError(f"{info.filename} unpacks to more than {bound} bytes", setting, bound)
    return data


def open_zip(data: bytes, limits: UploadLimits = DEFAULT_LIMITS) -> zipfile.ZipFile:
    """The archive of these bytes, checked by :func:`check_zip` (``BadZipFile`` if not one)."""
    z = zipfile.ZipFile(io.BytesIO(data))
    try:
        check_zip(z, len(data), limits)
    except LimitError:
        z.close()
        raise
    return z


# -- XML ------------------------------------------------------------------------------------------


class XmlRefusedError(ValueError):
    """XML that declares a DTD or entities, or that is not well-formed."""


def check_xml(data: bytes, limits: UploadLimits = DEFAULT_LIMITS) -> Any:
    """Parse XML with defusedxml (no DTD, no entities, no external references) within the depth.

    Returns the root element. Raises :class:`XmlRefusedError` or :class:`LimitError`.
    """
    from xml.etree.ElementTree import ParseError

    try:
        root = SafeElementTree.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        why = type(exc).__name__
        raise XmlRefusedError(f"the XML declares a DTD or entities ({why}); refused") from exc
    except ParseError as exc:
        raise XmlRefusedError(f"not well-formed XML ({exc})") from exc
    level = [root]
    depth = 1
    while level:
        if depth > limits.max_depth:
            raise LimitError(
                f"nested more than {limits.max_depth} levels deep", "max_depth", limits.max_depth
            )
        level = [c for el in level for c in el]
        depth += 1
    return root


def looks_like_xml(data: bytes) -> bool:
    """Whether a file's bytes begin (after a byte-order mark and blanks) with ``<``."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16
        return b"<\x00" in head[:8] or b"\x00<" in head[:8]
    return head.startswith(b"<")


def looks_like_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
