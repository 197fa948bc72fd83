"""Read-only SQL over a knowledge base's spreadsheets (xlsx/xlsm/csv loaded into SQLite).

Passage retrieval cannot add up a column; "total revenue in Q3" needs the whole table. Each
sheet becomes a table (first non-empty row = column names; numbers stored as numbers); the
query runs under an SQLite authorizer that allows reading only, with a step limit.
"""

from __future__ import annotations

import csv
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbchat.chat.tools import ToolContext, ToolError, ToolResult
from kbchat.types import Citation, ToolSpec

MAX_ROWS_SHOWN = 30
MAX_CELLS = 500_000
"""Cells loaded from one knowledge base's sheets at most (bigger sheets are cut, with a note)."""
MAX_STEPS = 5_000_000
"""SQLite virtual-machine steps a query may take before it is stopped."""
_SUFFIXES = {".xlsx", ".xlsm", ".csv"}
_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}
_RECURSIVE = getattr(sqlite3, "SQLITE_RECURSIVE", None)
if _RECURSIVE is not None:
    _ALLOWED.add(_RECURSIVE)


@dataclass(frozen=True)
class Table:
    """A sheet loaded as a table: its SQL name, source, columns and row count."""

    name: str
    kb: str
    file: str
    sheet: str | None
    columns: tuple[str, ...]
    rows: int


class SheetsSql:
    """``sheet_sql(sql, kb?)``: run one SELECT over the spreadsheets; the tables and their
    columns are listed in the tool description for the run."""

    spec = ToolSpec(
        name="sheet_sql",
        description="Run one read-only SQL SELECT (SQLite) over the spreadsheets in the user's "
        "knowledge bases, for totals, averages, counts, maxima and filters over table rows.",
        parameters={
            "type": "object",
            "properties": {
                "sql": {"type": "string", "description": "One SQLite SELECT statement."},
                "kb": {"type": "string", "description": "One knowledge base (default: all)."},
            },
            "required": ["sql"],
            "additionalProperties": False,
        },
    )
    examples = (
        "What was the total revenue in Q3 according to the sales sheet?",
        "What is the average price in the product table?",
        "How many orders in the spreadsheet are from Shanghai?",
        "Which region had the highest sales in the table?",
        "表格里第三季度的总收入是多少？",
        "销售表中上海的订单有多少条？",
        "产品表里平均价格是多少？",
        "表里哪个地区的销售额最高？",
    )

    def spec_for(self, context: ToolContext) -> ToolSpec:
        """The spec with the run's tables and columns in its description."""
        tables = list_tables(context, None)
        if not tables:
            return self.spec
        listing = "; ".join(
            f"table {t.name} (from {t.file}) with columns {', '.join(t.columns)}"
            for t in tables[:12]
        )
        return ToolSpec(
            name=self.spec.name,
            description=f"{self.spec.description} Tables: {listing}.",
            parameters=self.spec.parameters,
        )

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        sql = str(arguments.get("sql", "")).strip().rstrip(";")
        if not sql:
            raise ToolError("the SQL is empty")
        kb = arguments.get("kb")
        names, note = context.resolve([str(kb)] if kb else None)
        db, tables = load(context, names)
        if not tables:
            raise ToolError("there is no spreadsheet (xlsx, xlsm or csv) in the knowledge bases")
        try:
            db.set_authorizer(_read_only)
            steps = [0]

            def progress() -> int:
                steps[0] += 1000
                return 1 if steps[0] > MAX_STEPS else 0

            db.set_progress_handler(progress, 1000)
            try:
                cursor = db.execute(sql)
            except sqlite3.DatabaseError as exc:
                known = "; ".join(f"{t.name}({', '.join(t.columns)})" for t in tables)
                raise ToolError(f"the SQL failed: {exc}. Tables: {known}") from None
            columns = [d[0] for d in cursor.description or ()]
            rows = cursor.fetchmany(MAX_ROWS_SHOWN + 1)
        finally:
            db.close()
        for table in tables:
            if re.search(rf"\b{re.escape(table.name)}\b", sql, re.IGNORECASE):
                context.cite(
                    Citation(
                        marker=0,
                        kb=table.kb,
                        file=table.file,
                        text=f"table {table.name}: {', '.join(table.columns)} ({table.rows} rows)",
                        score=1.0,
                        sheet=table.sheet,
                    )
                )
        shown = rows[:MAX_ROWS_SHOWN]
        lines = [" | ".join(columns)] + [" | ".join(_cell(v) for v in row) for row in shown]
        if len(rows) > MAX_ROWS_SHOWN:
            lines.append(f"(more rows; the first {MAX_ROWS_SHOWN} are shown)")
        if not shown:
            lines.append("(no rows)")
        return ToolResult((f"{note}\n" if note else "") + "\n".join(lines))


def list_tables(context: ToolContext, names: Sequence[str] | None) -> list[Table]:
    """The tables the caller's spreadsheets would load as (loads them to know)."""
    db, tables = load(context, names)
    db.close()
    return tables


def load(
    context: ToolContext, names: Sequence[str] | None
) -> tuple[sqlite3.Connection, list[Table]]:
    """An in-memory database with one table per sheet of the readable knowledge bases."""
    db = sqlite3.connect(":memory:", check_same_thread=False)
    tables: list[Table] = []
    cells = 0
    for kb_name in context.readable(names):
        base = context.services.library.get(kb_name)
        for record in base.files():
            path = Path(record.path)
            if (
                record.status != "indexed"
                or path.suffix.lower() not in _SUFFIXES
                or not path.is_file()
            ):
                continue
            for sheet, rows in _sheets(path):
                if not rows or cells > MAX_CELLS:
                    continue
                name = _table_name(record.name, sheet, {t.name for t in tables})
                columns = _columns(rows[0])
                body = [_typed(row, len(columns)) for row in rows[1:]]
                body = body[: max(0, (MAX_CELLS - cells) // max(1, len(columns)))]
                cells += len(body) * len(columns)
                column_sql = ", ".join(_quote(c) for c in columns)
                db.execute(f"CREATE TABLE {_quote(name)} ({column_sql})")
                marks = ", ".join("?" * len(columns))
                db.executemany(f"INSERT INTO {_quote(name)} VALUES ({marks})", body)
                tables.append(Table(name, kb_name, record.name, sheet, tuple(columns), len(body)))
    return db, tables


def _sheets(path: Path) -> Iterator[tuple[str | None, list[list[Any]]]]:
    if path.suffix.lower() == ".csv":
        from kbchat.ingest.text import read_text

        text = read_text(path, path.name)
        rows = [row for row in csv.reader(text.splitlines()) if any(c.strip() for c in row)]
        yield None, rows
        return
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        for sheet in workbook.worksheets:
            rows = [
                list(row)
                for row in sheet.iter_rows(values_only=True)
                if any(v is not None and str(v).strip() for v in row)
            ]
            yield sheet.title, rows
    finally:
        workbook.close()


def _table_name(file: str, sheet: str | None, taken: set[str]) -> str:
    stem = Path(file).stem + (f"_{sheet}" if sheet else "")
    base = re.sub(r"\W+", "_", stem).strip("_").lower() or "sheet"
    if base[0].isdigit():
        base = "t_" + base
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def _columns(header: Sequence[Any]) -> list[str]:
    names: list[str] = []
    for i, value in enumerate(header):
        name = str(value).strip() if value is not None and str(value).strip() else f"column{i + 1}"
        while name in names:
            name += "_"
        names.append(name)
    return names


def _typed(row: Sequence[Any], width: int) -> list[Any]:
    values = [_number(v) for v in list(row)[:width]]
    return values + [None] * (width - len(values))


def _number(value: Any) -> Any:
    if value is None or isinstance(value, int | float):
        return value
    text = str(value).strip()
    cleaned = text.replace(",", "").replace("，", "")
    try:
        return int(cleaned)
    except ValueError:
        pass
    try:
        return float(cleaned)
    except ValueError:
        return text


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.10g}"
    return "" if value is None else str(value)


def _read_only(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED else sqlite3.SQLITE_DENY
