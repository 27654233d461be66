"""datasources/file_ingest.py without Redis: the mapping's own checks, reading CSV (UTF-8, BOM,
GB18030, UTF-16) and XLSX, rows → contract fields, hostile files, and a dry run through the
gateway's checks (`Intake.check` touches no Redis) on the demo registry."""

from __future__ import annotations

import time
import tomllib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import redis

from datasources.file_ingest import (
    FileError,
    MappingError,
    RowError,
    ingest,
    load_mapping,
    open_table,
    parse_mapping,
    row_fields,
)
from datasources.intake import Intake
from datasources.producers import Producer

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "ingest"
EXAMPLE = ROOT / "docs" / "examples"
TZ = "Asia/Shanghai"
SH = ZoneInfo(TZ)
HOTLINE = Producer("hotline-12345", frozenset({"events"}), "610202", 100)
HEADER = "工单编号,受理时间,所属社区编码,事项类别,紧急程度,诉求内容"


def events_mapping():
    return load_mapping(DATA / "events.toml", "events", TZ)


def write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "f.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def rows_of(path: Path, mapping) -> list[tuple[int, dict | str]]:
    """Every row's fields, or its reason."""
    table = open_table(path, mapping)
    out = []
    for line, cells in table.rows:
        try:
            out.append((line, row_fields(mapping, table.header, cells, table.strict)))
        except RowError as exc:
            out.append((line, str(exc)))
    table.close()
    return out


def local(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SH).timestamp() * 1000)


# -- the mapping ---------------------------------------------------------------------------

def doc(**over) -> dict:
    d = tomllib.loads((DATA / "events.toml").read_text("utf-8"))
    for k, v in over.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d


@pytest.mark.parametrize("over, needle", [
    ({"columns": {"ts": "受理时间", "colour": "颜色"}}, "unknown contract field 'colour'"),
    ({"columns": {"ts": "受理时间", "src": "来源"}}, "src: set by pingan ingest"),
    ({"constants": {"v": "2"}}, "v: set by pingan ingest"),
    ({"constants": {"eid": "X"}}, "eid is both a column and a constant"),
    ({"colums": {}}, "unknown key 'colums'"),
    ({"time": {"zone": "Mars/Olympus"}}, "unknown time zone"),
    ({"time": {"format": 5}}, "[time] format"),
    ({"time": {"formats": "%Y"}}, "[time] unknown key 'formats'"),
    ({"time": {"fields": ["colour"]}}, "unknown contract field 'colour'"),
    ({"columns": {"eid": 7}}, "[columns] eid: expected a string, got int"),
    ({"values": {"category": ["dispute"]}}, "[values.category] must be a table"),
    ({"due_hours": -1}, "due_hours"),
    ({"due_hours": True}, "due_hours"),
    ({"truncate": ["eid"]}, "truncate"),
    ({"encoding": "klingon-8"}, "unknown encoding"),
    ({"delimiter": ";;"}, "delimiter"),
    ({"header_row": 0}, "header_row"),
    ({"kind": "petitions"}, "the mapping is for kind 'petitions', not 'events'"),
    ({"columns": {"eid": "工单编号"}, "values": {}}, "[columns] ts"),
    ({"values": {"status": {"新建": "reported"}}}, "[values.status]: status is not in [columns]"),
])
def test_bad_mappings_say_what(over, needle):
    with pytest.raises(MappingError) as exc:
        parse_mapping(doc(**over), "events", TZ)
    assert needle in str(exc.value)


def test_mapping_file_errors(tmp_path):
    with pytest.raises(MappingError, match="not valid TOML"):
        load_mapping(write(tmp_path, "[columns\n", name="m.toml"), "events", TZ)
    with pytest.raises(MappingError, match="not UTF-8"):
        load_mapping(write(tmp_path, "[columns]\nts = '时间'\n", "gb18030", "m.toml"), "events", TZ)
    with pytest.raises(MappingError, match="due_hours is for events"):
        parse_mapping({"columns": {"ts": "t"}, "due_hours": 1}, "petitions", TZ)
    with pytest.raises(MappingError, match="unknown kind"):
        parse_mapping({"columns": {"ts": "t"}}, "vc", TZ)


# -- the documented example ----------------------------------------------------------------

def test_docs_example_reads_as_documented():
    m = load_mapping(EXAMPLE / "12345.toml", "events", TZ)
    rows = rows_of(EXAMPLE / "12345.csv", m)
    assert [line for line, _ in rows] == [2, 3, 4, 5, 6]
    first = rows[0][1]
    assert first == {"v": "1", "eid": "GD20261130-0001", "ts": str(local("2026-11-30 08:12:05")),
                     "centre": "610202001001", "category": "dispute", "urgency": "normal",
                     "summary": "邻里因噪音发生纠纷，请求调解", "status": "reported",
                     "channel": "hotline_12345",
                     "due": str(local("2026-11-30 08:12:05") + 72 * 3_600_000)}
    assert rows[2][1]["urgency"] == "urgent"
    assert rows[3][1]["category"] == "other"  # 供暖: the "*" fallback
    assert "联系电话" not in str(rows)  # an unmapped column (a phone number) goes nowhere
    assert rows[4][1] == "bad ts: '2026-11-31 12:00:00' does not match '%Y-%m-%d %H:%M:%S'"


# -- encodings -----------------------------------------------------------------------------

ROW = "GD-1,2026-11-30 08:12:05,610202001001,矛盾纠纷,一般,邻里纠纷\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk", "utf-16"])
def test_encodings_detected(tmp_path, encoding):
    p = write(tmp_path, HEADER + "\r\n" + ROW, encoding)
    [(line, fields)] = rows_of(p, events_mapping())
    assert line == 2 and fields["category"] == "dispute" and fields["summary"] == "邻里纠纷"


def test_wrong_encoding_is_a_clear_error(tmp_path):
    gbk = write(tmp_path, HEADER + "\n" + ROW, "gb18030")
    m = parse_mapping(doc(encoding="utf-8"), "events", TZ)
    with pytest.raises(FileError, match=r"line 1: not valid utf-8-sig .*encoding"):
        open_table(gbk, m)
    # GBK text read as Latin-1: the header does not match, and the message shows what was read
    m = parse_mapping(doc(encoding="latin-1"), "events", TZ)
    with pytest.raises(FileError, match=r"column '工单编号' \(for eid\) is not in the header "
                                        r"\(read as iso8859-1"):
        open_table(gbk, m)
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\x80\xff\xfe\x81" * 10)
    with pytest.raises(FileError, match="neither UTF-8 nor GB18030"):
        open_table(binary, events_mapping())


# -- hostile CSV ---------------------------------------------------------------------------

def test_empty_header_only_and_missing_column(tmp_path, settings):
    m = events_mapping()
    with pytest.raises(FileError, match="empty file"):
        open_table(write(tmp_path, ""), m)
    with pytest.raises(FileError, match="empty file"):
        open_table(write(tmp_path, "\n\n  \n"), m)
    table = open_table(write(tmp_path, HEADER + "\n,,,,,\n"), m)
    intake = Intake(redis.Redis(), None, settings.pipeline)  # never reached: no rows
    with pytest.raises(FileError, match="no rows below the header"):
        ingest(table, m, HOTLINE, intake, dry_run=True)
    with pytest.raises(FileError, match=r"column '事项类别' \(for category\) is not in the header"
                                        r".*'工单编号'"):
        open_table(write(tmp_path, HEADER.replace("事项类别", "类别") + "\n" + ROW), m)
    with pytest.raises(FileError, match="appears 2 times"):
        open_table(write(tmp_path, HEADER + ",工单编号\n"), m)


def test_hostile_rows(tmp_path):
    huge = "长" * 5000
    text = (HEADER + "\n" + ROW                                       # 2 good
            + "GD-2,2026-11-30 08:12:05,610202001001,矛盾纠纷\n"      # 3 too few
            + "GD-3,2026-11-30 08:12:05,610202001001,矛盾纠纷,一般,x,y\n"  # 4 too many
            + "GD-4,2026-11-30 08:12:05,610202001001,矛盾纠纷,一般,x,,\n"  # 5 empty extras: ok
            + 'GD-5,2026-11-30 08:12:05,610202001001,矛盾纠纷,一般,"=cmd|\' /C calc\'!A0"\n'
            + "GD-6,2026-11-30 08:12:05,610202001001,矛盾纠纷,一般,a\x00b\n"  # 7 NUL
            + f'GD-7,2026-11-30 08:12:05,610202001001,矛盾纠纷,一般,"{huge}"\n'  # 8 cut to 200
            + '"GD\n8",2026-11-30 08:12:05,610202001001,矛盾纠纷,一般,"多\n行\t文本"\n'  # 9-11
            + "GD-9,昨天,610202001001,矛盾纠纷,一般,x\n")              # 12 bad time
    rows = dict(rows_of(write(tmp_path, text), events_mapping()))
    assert rows[2]["eid"] == "GD-1"
    assert rows[3] == "4 cells, the header has 6"
    assert rows[4] == "7 cells, the header has 6"
    assert rows[5]["summary"] == "x"
    assert rows[6]["summary"] == "=cmd|' /C calc'!A0"  # a formula-looking cell is a string
    assert rows[7] == "NUL byte in the row"
    assert rows[8]["summary"] == "长" * 200  # truncate = ["summary"]
    assert rows[9]["summary"] == "多 行 文本" and rows[9]["eid"] == "GD\n8"  # ids are not text
    assert rows[12] == ("bad ts: '昨天' does not match '%Y-%m-%d %H:%M:%S' or '%Y/%m/%d %H:%M'")
    assert set(rows) == {2, 3, 4, 5, 6, 7, 8, 9, 12}  # a record's first line


def test_a_cell_beyond_the_csv_limit_is_a_file_error(tmp_path):
    big = write(tmp_path, HEADER + "\n" + ROW + "GD-2,x,y,z,w," + "a" * 200_000 + "\n")
    with pytest.raises(FileError, match=r"line 3: field larger than field limit"):
        rows_of(big, events_mapping())
    quoted = write(tmp_path, HEADER + '\n"GD-1,2026\n')  # a quote never closed
    with pytest.raises(FileError, match="line 2"):
        rows_of(quoted, events_mapping())


def test_not_a_workbook(tmp_path):
    m = events_mapping()
    with pytest.raises(FileError, match="not a readable XLSX workbook"):
        open_table(write(tmp_path, HEADER, name="x.xlsx"), m)
    fake = tmp_path / "zip.csv"
    fake.write_bytes(b"PK\x03\x04" + b"\x00" * 64)  # zip magic, no zip
    with pytest.raises(FileError, match="not a readable XLSX workbook"):
        open_table(fake, m)
    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64)
    with pytest.raises(FileError, match=r"old \.xls"):
        open_table(old, m)


# -- XLSX ----------------------------------------------------------------------------------

def test_xlsx_typed_cells_sheet_and_rows(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.title = "说明"
    wb.active["A1"] = "not this sheet"
    ws = wb.create_sheet("工单")
    ws.append(["某区12345工单导出"])  # a title line above the header
    ws.append(HEADER.split(","))
    ws.append(["GD-1", datetime(2026, 11, 30, 8, 12, 5), 610202001001.0, "矛盾纠纷", "一般", "x"])
    ws.append([])  # a blank row is skipped
    ws.append(["GD-2", "2026/11/30 09:00", 610202001001, "环境卫生", "紧急", None])
    ws.append(["GD-3", 3.5, "610202001001", "治安隐患", "一般", "=A1"])
    path = tmp_path / "export.xlsx"
    wb.save(path)
    m = parse_mapping(doc(sheet="工单", header_row=2), "events", TZ)
    rows = dict(rows_of(path, m))
    assert rows[3]["ts"] == str(local("2026-11-30 08:12:05"))  # an Excel date, in the zone
    assert rows[3]["centre"] == "610202001001"  # a code stored as a number
    assert rows[5]["ts"] == str(local("2026-11-30 09:00:00")) and "summary" not in rows[5]
    assert rows[6] == "bad ts: '3.5' does not match '%Y-%m-%d %H:%M:%S' or '%Y/%m/%d %H:%M'"
    assert set(rows) == {3, 5, 6}
    with pytest.raises(FileError, match="no sheet '工单2'"):
        open_table(path, parse_mapping(doc(sheet="工单2"), "events", TZ))


# -- a dry run through the gateway's checks ------------------------------------------------

def test_dry_run_reports_every_bad_row(tmp_path, topo, settings):
    now = datetime.fromtimestamp(time.time() - 3600, SH).strftime("%Y-%m-%d %H:%M:%S")
    old = datetime.fromtimestamp(time.time() - 9 * 86400, SH).strftime("%Y-%m-%d %H:%M:%S")
    text = (HEADER + "\n"
            + f"GD-1,{now},610202001001,矛盾纠纷,一般,x\n"
            + f"GD-2,{now},610203001001,矛盾纠纷,一般,x\n"       # another district
            + f"GD-3,{now},999999,矛盾纠纷,一般,x\n"
            + f"GD-4,{now},610202001001,算命,一般,x\n"
            + f"GD-5,{old},610202001001,矛盾纠纷,一般,x\n"
            + f"{'E' * 65},{now},610202001001,矛盾纠纷,一般,x\n"
            + f"GD-7,{now},610202001001,矛盾纠纷,一般,{'x' * 300}\n")
    intake = Intake(redis.Redis(), topo, settings.pipeline)  # check() touches no Redis
    seen: list[tuple[int, str]] = []
    rep = ingest(open_table(write(tmp_path, text), events_mapping()), events_mapping(),
                 HOTLINE, intake, dry_run=True, on_error=lambda n, r: seen.append((n, r)))
    assert (rep.rows, rep.good, rep.bad, rep.written) == (7, 2, 5, 0)
    reasons = dict(rep.errors)
    assert seen == rep.errors
    assert reasons[3] == "out of scope: centre 610203001001 is not under 610202"
    assert reasons[4] == "unknown centre: 999999"
    assert reasons[5] == "bad category: '算命'"
    assert reasons[6].startswith("too late:")
    assert reasons[7] == "value too long: eid (65 > 64 characters)"
    assert rep.summary(True) == "7 rows: 2 good, 5 bad (dry run, nothing written)"
    assert rep.to_dict()["errors"][0] == {"line": 3, "reason": reasons[3]}
