"""Which encoding a field office's CSV is in: detected, or refused naming the byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from truceline.errors import ValidationError
from truceline.io.text_encoding import detect_encoding, open_text

HEADER = "id,observed_at,lon,lat,kind,source_type,narrative\n"
UKRAINIAN = ["Обстріл біля Києва", "Вибух у селі Красногорівка", "Патруль чув постріли", "Міна"]
RUSSIAN = ["Обстрел у дороги", "Взрыв в районе Горловки", "Слышны выстрелы"]
WESTERN = ["Café détruit", "Straße gesperrt", "Tir près de l'école", "Explosión cerca"]


def _csv(narratives: list[str]) -> str:
    rows = [
        f"r{i},2025-01-20T10:00:00Z,37.5,48.3,explosion,patrol,{n}\n" for i, n in enumerate(narratives)
    ]
    return HEADER + "".join(rows)


@pytest.mark.parametrize(
    ("text", "codec", "expected"),
    [
        (_csv(UKRAINIAN), "cp1251", "cp1251"),
        (_csv(RUSSIAN), "cp1251", "cp1251"),
        (_csv(WESTERN), "cp1252", "cp1252"),
        (_csv(WESTERN), "latin-1", "cp1252"),  # the same bytes: Latin-1 is Windows-1252's subset
        (_csv(UKRAINIAN + WESTERN), "utf-8", "utf-8"),
        (_csv(UKRAINIAN), "utf-8-sig", "utf-8-sig"),
        (_csv(UKRAINIAN), "utf-16", "utf-16"),
    ],
)
def test_detects_the_encodings_field_offices_use(text: str, codec: str, expected: str) -> None:
    raw = text.encode(codec)
    det = detect_encoding(raw)
    assert det.codec == expected
    assert raw.decode(det.codec).replace("\ufeff", "") == text


def test_a_few_stray_bytes_stay_utf8_so_only_their_records_fail() -> None:
    raw = _csv(["ok", "bad"]).encode().replace(b"bad", b"b\xffd")
    assert detect_encoding(raw).codec == "utf-8"


def test_text_of_no_code_page_is_refused_naming_the_byte() -> None:
    raw = (_csv(["a", "b", "c"]) + "x,\x00\n").encode()
    raw = (
        raw.replace(b"a\n", b"\x9d\x8d\x81\n")
        .replace(b"b\n", b"\x90\x8f\n")
        .replace(b"c\n", b"q\x81z\n")
    )
    with pytest.raises(ValidationError) as exc:
        detect_encoding(raw, name="office.csv")
    msg = exc.value.message
    assert "office.csv" in msg and "0x9D" in msg and "line 2" in msg
    assert "--encoding" in (exc.value.fix or "")


@given(st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=20))
def test_valid_utf8_is_always_read_as_utf8(texts: list[str]) -> None:
    raw = "\n".join(texts).encode("utf-8", "surrogatepass")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return  # lone surrogates: not UTF-8
    if raw.startswith(b"\xef\xbb\xbf"):
        return
    assert detect_encoding(raw).codec == "utf-8"


def test_an_unknown_encoding_name_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text(HEADER)
    with pytest.raises(ValidationError, match="not a text encoding"):
        open_text(p, "klingon-8")
