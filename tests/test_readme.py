"""The README's commands run as written, in order, as a new user types them.

Every ``sh`` block of README.md (and of examples/samples/README.md) is run by bash, one script, in a
fresh folder that holds only what a clone has (``examples``, ``src``) and the installed ``.venv``.
Two things are adapted, and only these: ``make`` lines are left out (``make demo`` installs and
serves for ever; the suite itself is ``make test``), and ``truceline serve`` runs in the
background on a free port, which the later ``curl`` and ``ogrinfo`` lines use instead of 8000.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = (ROOT / "README.md", ROOT / "examples" / "samples" / "README.md")
_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)

pytestmark = pytest.mark.xdist_group("readme")


def _commands(text: str) -> list[str]:
    """The sh blocks' lines, ``make`` lines left out."""
    lines: list[str] = []
    for block in _BLOCK.findall(text):
        lines += [ln for ln in block.splitlines() if not ln.startswith("make ")]
    return lines


def _script(port: int) -> str:
    out = [
        "set -euo pipefail",
        "PS4='+ README: '",
        "set -x",
        "mkdir -p out",
    ]
    for readme in READMES:
        for line in _commands(readme.read_text(encoding="utf-8")):
            line = line.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            if line.startswith(".venv/bin/truceline serve "):
                cmd = line.split("#", 1)[0].rstrip()
                out += [
                    f"{cmd} --port {port} > out/serve.log 2>&1 &",
                    "SERVER=$!",
                    "trap 'kill $SERVER 2>/dev/null || true' EXIT",
                    f"for _ in $(seq 120); do curl -sf http://127.0.0.1:{port}/api/v1/health "
                    "> /dev/null && break; sleep 1; done",
                ]
            else:
                out.append(line)
    return "\n".join(out) + "\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_commands_are_there() -> None:
    """The walk below covers the commands a user needs first (a README edit cannot drop them)."""
    text = "\n".join(_commands(READMES[0].read_text(encoding="utf-8")))
    for needed in (
        "agreement check",
        "simulate",
        "classify",
        "import",
        "report",
        "locate",
        "plan compare",
        "token create",
        "serve",
        "curl",
        "ledger proof",
        "ledger_verify.py",
        "attach",
        "export incidents",
    ):
        assert needed in text, needed
    assert "<" not in text.replace("<<", ""), "a placeholder (<...>) cannot run as written"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_runs_as_written(tmp_path: Path) -> None:
    for name in ("examples", "src"):
        (tmp_path / name).symlink_to(ROOT / name)
    venv = ROOT / ".venv"
    if not (venv / "bin" / "truceline").exists():
        pytest.skip("no .venv with truceline installed (make test creates it)")
    (tmp_path / ".venv").symlink_to(venv)
    script = tmp_path / "readme.sh"
    script.write_text(_script(_free_port()), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUCELINE_")}
    env.update(COLUMNS="200", NO_COLOR="1")
    res = subprocess.run(
        ["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500
    )
    ran = [ln for ln in res.stderr.splitlines() if ln.startswith("+ README: ")]
    assert res.returncode == 0, (
        f"the README's command failed: {ran[-1] if ran else '?'}\n--- stderr (end) ---\n"
        f"{res.stderr[-4000:]}\n--- stdout (end) ---\n{res.stdout[-2000:]}"
    )
    said = " ".join(res.stdout.split())
    assert "OK: entry" in said  # the standalone verifier checked a same-day proof
    assert "INCONSISTENT" in said or "inconsistent" in said.lower()  # the photo 40 km off
    for made in ("report.html", "report.pdf", "events.csv", "plan.html", "proof.json", "roots.json"):
        assert (tmp_path / "out" / made).stat().st_size > 0, made
    assert not [p.name for p in tmp_path.iterdir() if p.is_file() and p.name != "readme.sh"], (
        "outputs land under out/, not in the repository root"
    )
