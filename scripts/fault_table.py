#!/usr/bin/env python3
"""Run the fault suite (tests/faults) and print its results as the markdown table of
docs/reliability.md.

Each fault test appends one JSON line (its FAULT summary) to the file named by
PINGAN_FAULT_REPORT; this script sets that variable, runs pytest, and joins the lines with
each test's outcome. Extra arguments go to pytest, e.g. `-k poison`.

    .venv/bin/python scripts/fault_table.py            # whole suite, table on stdout
    .venv/bin/python scripts/fault_table.py --json     # the raw rows instead
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ("fault", "injected", "written", "applied", "dead", "lost", "doubled", "result")


def outcomes(junit: Path) -> dict[str, str]:
    """pytest node id → passed | failed | error | skipped, from a JUnit XML report."""
    out = {}
    if not junit.exists():
        return out
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        nodeid = f"{module}.py::{case.get('name')}"
        result = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                result = {"failure": "failed"}.get(child.tag, child.tag)
        out[nodeid] = result
    return out


def cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def main(argv: list[str]) -> int:
    as_json = "--json" in argv
    args = [a for a in argv if a != "--json"]
    with tempfile.TemporaryDirectory() as tmp:
        rows_file = Path(tmp) / "faults.jsonl"
        junit = Path(tmp) / "junit.xml"
        env = dict(os.environ, PINGAN_FAULT_REPORT=str(rows_file))
        cmd = [sys.executable, "-m", "pytest", "tests/faults", "-q", "-p", "no:cacheprovider",
               f"--junitxml={junit}", *args]
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        seconds = time.monotonic() - started
        rows = [json.loads(line) for line in rows_file.read_text().splitlines()
                if line.strip()] if rows_file.exists() else []
        results = outcomes(junit)
    for row in rows:
        row["result"] = results.get(row.get("test", ""), "?")
    if as_json:
        print(json.dumps({"seconds": round(seconds, 1), "exit_code": proc.returncode,
                          "rows": rows}, ensure_ascii=False, indent=1))
        return proc.returncode
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        print("| " + " | ".join(cell(row.get("name" if c == "fault" else c, "")) for c in COLUMNS)
              + " |")
    tail = proc.stdout.strip().splitlines()[-1:] or [""]
    print(f"\n`pytest tests/faults`: {tail[0]} (exit {proc.returncode}), "
          f"{seconds:.0f} s wall time")
    if proc.returncode not in (0, 1):
        print(proc.stdout[-3000:], file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
