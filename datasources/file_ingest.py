"""Files from systems that only export (issue 12 item 7): CSV/XLSX rows → contract entries.

A mapping (TOML, see docs/producers.md) says which column holds which contract field, how the
file's values translate into the contract's vocabulary, how its times read and which fields
are the same on every row. `load_mapping` checks the mapping itself; `open_table` reads the
file (CSV in UTF-8, UTF-8 with BOM, GB18030 or UTF-16 with BOM; XLSX through openpyxl) into a
header and numbered rows; `row_fields` turns one row into contract fields; `ingest` runs every
row through the gateway's checks (`datasources.intake.Intake`) and, unless it is a dry run,
writes the good ones in batches. A bad row is reported with its line and never written: it is
the file's problem, not a stream's, so it does not become a dead letter.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import tomllib
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from datasources.contract import MAX_TEXT, InvalidEntry

# The fields a producer may give per kind (docs/STREAMS.md §2); `v` and `src` are set here.
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "events": ("ts", "eid", "status", "centre", "to", "grid", "category", "channel", "urgency",
               "due", "satisfied", "summary", "by", "note", "user"),
    "patrols": ("ts", "pid", "grid", "worker"),
    "cameras": ("ts", "cam", "state"),
    "petitions": ("ts", "pid", "centre", "channel", "group", "skip_level"),
}
TEXT_FIELDS = ("summary", "note")  # free text: whitespace runs become one space
TIME_FIELDS = ("ts", "due")  # always read with [time]; `time.fields` may add others
EPOCH_FORMATS = ("epoch_ms", "epoch_s")
FALLBACK = "*"  # a [values.<field>] key that maps every value not listed
BATCH = 500
MAX_DUE_HOURS = 24 * 366
MAX_ERRORS_KEPT = 10_000  # errors kept for the JSON summary; every one is still reported
_TOP_KEYS = frozenset({"kind", "encoding", "sheet", "header_row", "delimiter", "due_hours",
                       "truncate", "columns", "values", "time", "constants"})
_TIME_KEYS = frozenset({"format", "zone", "fields"})
_WS = re.compile(r"\s+")


class MappingError(ValueError):
    """The mapping file is wrong; the message says where."""


class FileError(ValueError):
    """The data file cannot be read as a whole (not a row's problem)."""


class RowError(ValueError):
    """One row cannot become an entry; the message is the reason reported for its line."""


@dataclass(frozen=True)
class Mapping:
    kind: str
    columns: dict[str, str]  # contract field → the file's column header
    values: dict[str, dict[str, str]]  # contract field → {file value → contract value}
    formats: tuple[str, ...]
    zone: ZoneInfo
    time_fields: frozenset[str]
    constants: dict[str, str]
    due_hours: float | None = None
    truncate: frozenset[str] = frozenset()
    encoding: str | None = None
    sheet: str | None = None
    header_row: int = 1
    delimiter: str = ","


def _q(value: object) -> str:
    """A value quoted for a message: repr (control characters escaped), cut to 64."""
    return repr(str(value)[:64])


def _strings(table: object, where: str) -> dict[str, str]:
    if not isinstance(table, dict):
        raise MappingError(f"[{where}] must be a table of names to strings")
    for k, v in table.items():
        if not isinstance(v, str):
            raise MappingError(f"[{where}] {k}: expected a string, got {type(v).__name__}")
    return dict(table)


def _known(name: str, kind: str, where: str) -> None:
    if name in ("v", "src"):
        raise MappingError(f"[{where}] {name}: set by pingan ingest (src is the producer's name)")
    if name not in KIND_FIELDS[kind]:
        raise MappingError(f"[{where}] unknown contract field {name!r} for {kind} "
                           f"(known: {', '.join(KIND_FIELDS[kind])})")


def parse_mapping(doc: dict[str, Any], kind: str, default_zone: str) -> Mapping:
    """Check a parsed mapping document for `kind`; raise MappingError naming the problem."""
    if kind not in KIND_FIELDS:
        raise MappingError(f"unknown kind {kind!r} (one of {', '.join(KIND_FIELDS)})")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise MappingError(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_TOP_KEYS))})")
    if doc.get("kind", kind) != kind:
        raise MappingError(f"the mapping is for kind {doc['kind']!r}, not {kind!r}")
    columns = _strings(doc.get("columns", {}), "columns")
    constants = _strings(doc.get("constants", {}), "constants")
    for name in columns:
        _known(name, kind, "columns")
    for name in constants:
        _known(name, kind, "constants")
        if name in columns:
            raise MappingError(f"{name} is both a column and a constant")
    raw_values = doc.get("values", {})
    if not isinstance(raw_values, dict):
        raise MappingError("[values] must hold one table per field, e.g. [values.category]")
    values = {}
    for name, table in raw_values.items():
        _known(name, kind, f"values.{name}")
        if name not in columns:
            raise MappingError(f"[values.{name}]: {name} is not in [columns]")
        values[name] = _strings(table, f"values.{name}")
    tdoc = doc.get("time", {})
    if not isinstance(tdoc, dict):
        raise MappingError("[time] must be a table")
    if set(tdoc) - _TIME_KEYS:
        raise MappingError(f"[time] unknown key {sorted(set(tdoc) - _TIME_KEYS)[0]!r} "
                           f"(known: {', '.join(sorted(_TIME_KEYS))})")
    fmt = tdoc.get("format", "%Y-%m-%d %H:%M:%S")
    formats = (fmt,) if isinstance(fmt, str) else fmt
    if not isinstance(formats, list | tuple) or not formats or \
            not all(isinstance(f, str) and f for f in formats):
        raise MappingError("[time] format: a strptime format, a list of them, or epoch_ms")
    try:
        zone = ZoneInfo(str(tdoc.get("zone", default_zone)))
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(f"[time] zone: unknown time zone {_q(tdoc.get('zone'))}") from None
    extra = tdoc.get("fields", [])
    if not isinstance(extra, list) or not all(isinstance(f, str) for f in extra):
        raise MappingError("[time] fields: a list of field names")
    for name in extra:
        _known(name, kind, "time")
    due_hours = doc.get("due_hours")
    if due_hours is not None:
        if kind != "events":
            raise MappingError("due_hours is for events")
        if not isinstance(due_hours, int | float) or isinstance(due_hours, bool) \
                or not 0 < due_hours <= MAX_DUE_HOURS:
            raise MappingError(f"due_hours: a number of hours from 0 to {MAX_DUE_HOURS}")
        if "due" in constants:
            raise MappingError("due is both a constant and due_hours")
    truncate = doc.get("truncate", [])
    if not isinstance(truncate, list) or not all(f in TEXT_FIELDS for f in truncate):
        raise MappingError(f"truncate: a list of text fields ({', '.join(TEXT_FIELDS)})")
    encoding = doc.get("encoding")
    if encoding is not None:
        try:
            encoding = codecs.lookup(str(encoding)).name
        except LookupError:
            raise MappingError(f"encoding: unknown encoding {_q(encoding)}") from None
        encoding = "utf-8-sig" if encoding == "utf-8" else encoding  # a BOM is no header cell
    sheet = doc.get("sheet")
    if sheet is not None and not isinstance(sheet, str):
        raise MappingError("sheet: the name of a sheet")
    header_row = doc.get("header_row", 1)
    if not isinstance(header_row, int) or isinstance(header_row, bool) or \
            not 1 <= header_row <= 1000:
        raise MappingError("header_row: the line of the header, from 1 to 1000")
    delimiter = doc.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"\r\n":
        raise MappingError("delimiter: one character, e.g. \",\" or \"\\t\"")
    if "ts" not in columns and "ts" not in constants:
        raise MappingError("[columns] ts: which column holds the time (required)")
    return Mapping(kind=kind, columns=columns, values=values, formats=tuple(formats), zone=zone,
                   time_fields=frozenset(TIME_FIELDS) | frozenset(extra), constants=constants,
                   due_hours=due_hours, truncate=frozenset(truncate), encoding=encoding,
                   sheet=sheet, header_row=header_row, delimiter=delimiter)


def load_mapping(path: str | Path, kind: str, default_zone: str) -> Mapping:
    """Read and check a mapping file (TOML)."""
    try:
        doc = tomllib.loads(Path(path).read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise MappingError(f"{path}: not UTF-8 (save the mapping as UTF-8)") from None
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_mapping(doc, kind, default_zone)
    except MappingError as exc:
        raise MappingError(f"{path}: {exc}") from None


# ---- reading the file --------------------------------------------------------------------

@dataclass
class Table:
    """A file's header and its rows as (line, cells); `encoding` as read (CSV). `strict`: a
    row must have the header's width (CSV; XLSX rows lose their trailing empty cells)."""

    header: list[str]
    rows: Iterator[tuple[int, list[object]]]
    encoding: str | None = None
    strict: bool = True
    close: Callable[[], None] = field(default=lambda: None)


def decode_text(data: bytes, encoding: str | None) -> tuple[str, str]:
    """The text of a CSV file and the encoding it was read with: the mapping's, else UTF-16
    by its BOM, else UTF-8 (with or without BOM), else GB18030 (Chinese government exports)."""
    detected = encoding is None
    if detected:
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            encoding = "utf-16"
        else:
            try:
                return data.decode("utf-8-sig"), "utf-8"
            except UnicodeDecodeError:
                encoding = "gb18030"
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        if detected and encoding == "gb18030":
            why = "neither UTF-8 nor GB18030 text (a binary file? set `encoding` in the mapping)"
        else:
            why = f"not valid {encoding} (set `encoding` in the mapping, e.g. gb18030 or utf-8)"
        raise FileError(f"line {line}: {why}") from None


def _csv_rows(text: str, delimiter: str) -> Iterator[tuple[int, list[object]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FileError(f"line {start}: {exc}") from None
        yield start, list(cells)
        start = reader.line_num + 1


def _csv_table(path: Path, mapping: Mapping) -> Table:
    data = path.read_bytes()
    if not data.strip():
        raise FileError("empty file")
    text, encoding = decode_text(data, mapping.encoding)
    return _with_header(_csv_rows(text, mapping.delimiter), mapping, encoding)


def _xlsx_table(path: Path, mapping: Mapping) -> Table:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError) as exc:
        raise FileError(f"not a readable XLSX workbook ({type(exc).__name__}: "
                        f"{str(exc)[:120]})") from None
    if mapping.sheet is None:
        ws = wb.worksheets[0] if wb.worksheets else None
    elif mapping.sheet in wb.sheetnames:
        ws = wb[mapping.sheet]
    else:
        wb.close()
        raise FileError(f"no sheet {_q(mapping.sheet)} (sheets: {', '.join(wb.sheetnames)})")
    if ws is None:
        wb.close()
        raise FileError("the workbook has no sheet")
    rows = ((n, list(cells)) for n, cells in enumerate(ws.iter_rows(values_only=True), 1))
    try:
        table = _with_header(rows, mapping, None)
    except Exception:
        wb.close()
        raise
    table.strict = False
    table.close = wb.close
    return table


def _blank(cells: Sequence[object]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def _with_header(rows: Iterator[tuple[int, list[object]]], mapping: Mapping,
                 encoding: str | None) -> Table:
    header = None
    for line, cells in rows:
        if line == mapping.header_row:
            header = ["" if c is None else str(c).strip() for c in cells]
            break
        if line > mapping.header_row:
            break
    if header is None or _blank(header):
        raise FileError(f"empty file: no header on line {mapping.header_row}")
    for fname, col in mapping.columns.items():
        n = header.count(col)
        if n == 0:
            shown = ", ".join(_q(h) for h in header[:40])
            hint = f" (read as {encoding}; set `encoding` if that is wrong)" if encoding else ""
            raise FileError(f"column {col!r} (for {fname}) is not in the header{hint}; "
                            f"the header has: {shown}")
        if n > 1:
            raise FileError(f"column {col!r} (for {fname}) appears {n} times in the header")
    return Table(header, (row for row in rows if not _blank(row[1])), encoding)


def open_table(path: str | Path, mapping: Mapping) -> Table:
    """Open a CSV or XLSX export (by its content: a zip is XLSX); raise FileError when the
    file as a whole cannot be read."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            magic = fh.read(8)
    except OSError as exc:
        raise FileError(f"cannot read: {exc.strerror}") from None
    if magic.startswith(b"\xd0\xcf\x11\xe0"):
        raise FileError("an old .xls (Excel 97-2003) workbook: save it as .xlsx or CSV")
    if magic.startswith(b"PK") or p.suffix.lower() in (".xlsx", ".xlsm"):
        return _xlsx_table(p, mapping)
    return _csv_table(p, mapping)


# ---- one row -----------------------------------------------------------------------------

def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # XLSX stores codes and ids as numbers
    if isinstance(value, datetime | date | time):
        return value.isoformat(sep=" ")
    return str(value).strip()


def parse_time(value: object, mapping: Mapping, name: str) -> int:
    """A time cell as ms since the epoch: an XLSX date, or text in one of the formats, read
    in the mapping's zone (unless the format carries its own offset, %z)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if isinstance(value, datetime):
        dt = value
    else:
        text = _cell_text(value)
        dt = None
        for fmt in mapping.formats:
            if fmt in EPOCH_FORMATS:
                if text.isascii() and text.isdigit() and len(text) <= 16:
                    return int(text) * (1000 if fmt == "epoch_s" else 1)
                continue
            try:
                dt = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        if dt is None:
            raise RowError(f"bad {name}: {_q(text)} does not match "
                           f"{' or '.join(repr(f) for f in mapping.formats)}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=mapping.zone)
    return int(dt.timestamp() * 1000)


def row_fields(mapping: Mapping, header: list[str], cells: Sequence[object],
               strict_width: bool = True) -> dict[str, str]:
    """The contract fields of one row (without `src`); raise RowError with the reason."""
    if "\x00" in "".join(c for c in cells if isinstance(c, str)):
        raise RowError("NUL byte in the row")
    width = len(cells)
    if strict_width and width != len(header) and not (
            width > len(header) and _blank(cells[len(header):])):
        raise RowError(f"{width} cells, the header has {len(header)}")
    out: dict[str, str] = {"v": "1"}
    for name, col in mapping.columns.items():
        i = header.index(col)
        raw = cells[i] if i < width else None
        table = mapping.values.get(name)
        if table is not None:
            text = _cell_text(raw)
            if text in table:
                raw = table[text]
            elif text and FALLBACK in table:
                raw = table[FALLBACK]
        if name in mapping.time_fields and _cell_text(raw):
            out[name] = str(parse_time(raw, mapping, name))
            continue
        text = _cell_text(raw)
        if name in TEXT_FIELDS:
            text = _WS.sub(" ", text).strip()
            if name in mapping.truncate:
                text = text[:MAX_TEXT]
        if text:
            out[name] = text
    out.update(mapping.constants)
    if mapping.due_hours is not None and not out.get("due") and out.get("ts", "").isdigit():
        out["due"] = str(int(out["ts"]) + int(mapping.due_hours * 3_600_000))
    return out


# ---- the whole file ----------------------------------------------------------------------

class Checker(Protocol):
    """What `ingest` needs of `datasources.intake.Intake`."""

    def check(self, producer: Any, kind: str, entry: object) -> tuple[str, dict[str, str]]: ...

    def submit(self, producer: Any, kind: str, entries: list[object]) -> list[dict]: ...


@dataclass
class Report:
    rows: int = 0
    good: int = 0
    bad: int = 0
    written: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    errors_omitted: int = 0

    def fail(self, line: int, reason: str, on_error: Callable[[int, str], None] | None) -> None:
        self.bad += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append((line, reason))
        else:
            self.errors_omitted += 1
        if on_error is not None:
            on_error(line, reason)

    def summary(self, dry_run: bool) -> str:
        line = f"{self.rows:,} rows: {self.good:,} good, {self.bad:,} bad"
        return line + (" (dry run, nothing written)" if dry_run else f", {self.written:,} written")

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "good": self.good, "bad": self.bad, "written": self.written,
                "errors": [{"line": n, "reason": r} for n, r in self.errors],
                "errors_omitted": self.errors_omitted}


def ingest(table: Table, mapping: Mapping, producer: Any, checker: Checker, *,
           dry_run: bool, batch: int = BATCH,
           on_error: Callable[[int, str], None] | None = None,
           on_progress: Callable[[Report], None] | None = None) -> Report:
    """Check every row of `table` (and write the good ones in batches unless `dry_run`)."""
    rep = Report()
    pending: list[tuple[int, dict[str, str]]] = []

    def flush() -> None:
        results = checker.submit(producer, mapping.kind, [f for _, f in pending])
        for (line, _), res in zip(pending, results, strict=True):
            if res.get("ok"):
                rep.good += 1
                rep.written += 1
            else:
                rep.fail(line, str(res.get("error")), on_error)
        pending.clear()

    try:
        for line, cells in table.rows:
            rep.rows += 1
            try:
                fields = row_fields(mapping, table.header, cells, table.strict)
                if dry_run:
                    checker.check(producer, mapping.kind, fields)
                    rep.good += 1
                else:
                    pending.append((line, fields))
                    if len(pending) >= batch:
                        flush()
            except (RowError, InvalidEntry) as exc:
                rep.fail(line, str(exc), on_error)
            if on_progress is not None and rep.rows % 10_000 == 0:
                on_progress(rep)
        if pending:
            flush()
        if rep.rows == 0:
            raise FileError("no rows below the header")
    finally:
        table.close()
    return rep
