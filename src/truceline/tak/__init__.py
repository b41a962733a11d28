"""TAK / Cursor on Target: field devices (ATAK, WinTAK, iTAK) report to Truceline and see its results.

- :mod:`truceline.tak.cot`: parse CoT XML safely, turn events into incident records, build the
  shapes and markers pushed back (pure; no I/O);
- :mod:`truceline.tak.server`: the TCP and TLS listeners started by ``truceline serve``;
"""
