"""A CSV of incidents with every kind of bad, odd and good row (written by hand, not simulated)."""

from __future__ import annotations

import random
from pathlib import Path

HEADER = (
    "id,observed_at,time_precision,lon,lat,uncertainty_m,kind,weapon_class,count,party,origin_lon,"
    "origin_lat,origin_uncertainty_m,bearing_deg,source_type,reliability,credibility,narrative"
)

GOOD = "{id},2025-02-0{d}T0{h}:1{m}:00Z,minute,37.{x},48.{y},150,explosion,,1,,,,,,patrol,B,2,plain {id}"

#: Rows that are bad, odd but good, or good, each spelled as a CSV line (after the id's cell).
ODD = [
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,fine",
    "2025-02-01T04:12:00+02:00,,37.5,48.5,,explosion,,,,,,,,patrol,,,fine with defaults",
    "2025-02-01 04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,space separator",
    "2025-02-01T04:12Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,no seconds",
    "2025-02-30T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,no such day",
    "2025-02-01T24:00:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,hour 24",
    "2025-02-01T04:12:00,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,no offset",
    "1899-12-31T23:59:59Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,too early",
    "2100-01-01T00:00:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,too late",
    "2100-01-01T00:30:00+01:00,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,just in",
    "2025-02-01T04:12:00.1234567Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,7 digits",
    "2025-02-01T04:12:00.5-00:00,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,minus zero",
    "2025-02-01T04:12:00Z,minute,200,48.5,100,explosion,,1,,,,,,patrol,B,2,lon out",
    "2025-02-01T04:12:00Z,minute,200,95,100,explosion,,1,,,,,,patrol,B,2,both out",
    "2025-02-01T04:12:00Z,minute,nan,48.5,100,explosion,,1,,,,,,patrol,B,2,nan",
    "2025-02-01T04:12:00Z,minute,inf,48.5,100,explosion,,1,,,,,,patrol,B,2,inf",
    "2025-02-01T04:12:00Z,minute,1e1,48.5,100,explosion,,1,,,,,,patrol,B,2,exponent",
    "2025-02-01T04:12:00Z,minute, 37.5 ,48.5,100,explosion,,1,,,,,,patrol,B,2,padded number",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,-1,explosion,,1,,,,,,patrol,B,2,negative sigma",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,-0,explosion,,1,,,,,,patrol,B,2,minus zero sigma",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosions,,1,,,,,,patrol,B,2,bad kind",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100, explosion ,,1,,,,,,patrol,B,2,padded kind",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,0,,,,,,patrol,B,2,count 0",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,007,,,,,,patrol,B,2,count 007",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,2.0,,,,,,patrol,B,2,count 2.0",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,true,,,,,,patrol,B,2,count true",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,37.4,,,,patrol,B,2,half origin",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,37.4,48.4,,,patrol,B,2,origin",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,360,patrol,B,2,bearing 360",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,359.9,patrol,B,2,bearing ok",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,G,2,reliability G",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,b,2,lowercase b",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,7,credibility 7",
    "2025-02-01T04:12:00Z,weekly,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,bad precision",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,satellite,B,2,bad source",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,  padded narrative  ",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,обстріл біля села",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,\u00a0nbsp narrative\u00a0",
    '2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,=HYPERLINK("x")',
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,'=quoted formula",
    '2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,"a, quoted\nnarrative"',
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,nul \x00 inside",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2," + "x" * 4001,
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,nosuchgun,1,,,,,,patrol,B,2,bad weapon",
    "2025-02-01T04:12:00Z,minute,48.5,37.5,100,explosion,,1,,,,,,patrol,B,2,swapped",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,too,many,cells",
    "2025-02-01T04:12:00Z,minute,37.5,48.5",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,RU-and-a-very-long-party-name-over-32"
    ",,,,,patrol,B,2,long party",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,  ,,,,,patrol,B,2,blank party",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,1e400,explosion,,1,,,,,,patrol,B,2,huge",
    "2025-02-01T04:12:00Z,minute,+37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,plus sign",
    "2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,\ud800 surrogate",
]

#: Ids, each after ``ODD`` rows's id cell (some bad in themselves).
ODD_IDS = ["", " ", "=cmd|' /C calc'!A0", "x" * 129, "id\x00nul", " padded ", "ок-кирилиця", "'=quoted"]


def write_hostile(
    path: Path, n_good: int = 3000, seed: int = 7, *, stray_byte: bool = False, by_day: bool = False
) -> Path:
    """``n_good`` plain rows with the odd rows, repeats and conflicts scattered among them.

    ``stray_byte``: the row marked with a lone surrogate holds a byte that is not UTF-8 (0xFF), and
    the rows of Cyrillic text are left out (with them the file would be refused whole as in no
    known encoding); otherwise that row is left out.
    """
    rng = random.Random(seed)
    odd_rows = [o for o in ODD if ("\ud800" in o) == stray_byte or (stray_byte and o.isascii())]
    ids = [i for i in ODD_IDS if not stray_byte or i.isascii()]
    lines = []
    for k in range(n_good):
        lines.append(
            GOOD.format(
                id=f"g{k}",
                d=1 + (k * 9 // n_good if by_day else k % 9),
                h=k % 10,
                m=k % 10,
                x=100 + k % 800,
                y=200 + k % 700,
            )
        )
    first_day = n_good // 9 if by_day else len(lines)  # odd rows are of the first day, or 2100
    for k, odd in enumerate(odd_rows):
        at = len(lines) if odd.startswith("2100") else rng.randrange(first_day)
        lines.insert(at, f"odd{k}," + odd)
    for rid in ids:
        cell = '"' + rid.replace('"', '""') + '"' if ("," in rid or '"' in rid) else rid
        lines.insert(rng.randrange(first_day), cell + "," + ODD[0])
    # repeats: the same record again (skipped), and the same id with other content (refused)
    # (in day order: each right after its first, so the days stay in order)
    for k in rng.sample(range(n_good), 40):
        lines.insert(k + 1 if by_day else rng.randrange(len(lines)), lines[k])
    for k in rng.sample(range(n_good), 20):
        first = next(j for j, line in enumerate(lines) if line.startswith(f"g{k},"))
        lines.insert(first + 1 if by_day else rng.randrange(len(lines)), f"g{k}," + ODD[0])
    lines.insert(rng.randrange(len(lines)), "")  # a blank line (not a record)
    text = HEADER + "\n" + "\n".join(lines) + "\n"
    data = text.encode("utf-8", "surrogatepass")
    data = data.replace("\ud800".encode("utf-8", "surrogatepass"), b"\xff")  # a byte not UTF-8
    path.write_bytes(data)
    return path
