"""Table schemas as records, and the one validation of every input table.

A schema is a tuple of :class:`Column` records (name, parser, required, default,
doc). Every table jaxcost reads is declared this way and checked here: the chips
(``model.hardware.CHIP_COLUMNS``), the models (``model.workload.MODEL_COLUMNS``), the
priors (``model.params.PRIOR_COLUMNS``), the goodput parameters
(``model.goodput.GOODPUT_COLUMNS``), the benchmark files
(``io.benchmarks.COLLECTIVES_SCHEMA``, ...), the training-run input
(``io.runs.RUN_COLUMNS``) and the tables of a scenario TOML
(``policy.scenario``). A CSV goes through :func:`read_table` (or
:func:`read_csv_rows` + :func:`validate_rows`), a TOML table through
:func:`validate_keys`; both parse every cell with its column's parser and collect
*every* problem, each a :class:`Problem` that prints as one line naming the file,
the row, the column and what was expected::

    chips.csv row 3 (line 4), column 'hbm_bytes_per_s': value 'fast' is not a
    number; expected a number in SI units

Rows are numbered one way everywhere (:func:`jaxcost.errors.location`): data rows,
1-based, header excluded (``row 1`` is the first row under the header), with the
physical line of the file beside it. A header problem names no row; a TOML problem
names its key (``scenario.toml, key 'limits.pue': ...``).

A loader checks what spans rows (duplicates, cross-column rules) itself, adds those
problems, and ends with :func:`raise_problems`: the first problem becomes the
one-line error (a :class:`~jaxcost.errors.DataError` or the class the problem names),
the message says how many more there are, and ``err.problems`` holds them all.

Pure stdlib (``csv``).
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxcost.errors import DataError, JaxcostError, location

__all__ = [
    "Column",
    "Problem",
    "Table",
    "BLANK",
    "row_where",
    "read_csv_rows",
    "read_table",
    "validate_rows",
    "validate_keys",
    "duplicate_problems",
    "raise_problems",
    "schema_markdown",
    "text",
    "number",
    "boolean",
    "one_of",
    "provenance_columns",
]

#: The message of a blank cell in a required column.
BLANK = "blank cell; expected a value"


# ------------------------------------------------------------------ records


@dataclasses.dataclass(frozen=True)
class Column:
    """The rule for one input column (or one key of a TOML table).

    Attributes:
      name: the header (or key).
      parse: cell -> value; raises :class:`~jaxcost.errors.JaxcostError` (message:
        what was expected) when the cell cannot be read. Not called on blank cells.
        CSV cells reach it as stripped text, TOML values as parsed.
      required: a value is needed in every row; a blank cell is a problem.
      default: the value a blank cell means when not required (None: stays blank;
        ``math.nan`` for an unknown number).
      doc: one line for the documentation: meaning, unit, accepted forms.
      present: the header must name this column (even where its cells may be
        blank); a missing one is a problem of the file.
    """

    name: str
    parse: Callable[[Any], Any]
    required: bool = False
    default: Any = None
    doc: str = ""
    present: bool = False


def row_where(file: str, row: int | str | None, line: int | None = None) -> str:
    """``file row N (line M)``: N is the 1-based data row (header excluded), M the
    line of the file (the header is line 1; M = N + 1 without multi-line cells).
    See :func:`jaxcost.errors.location`."""
    return location(file, row, line=line)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem of one cell, row, key or header: prints as one line.

    Attributes:
      file: the file as given.
      row: 1-based data row; text for a place that is not a row (``"key 'x'"``);
        None for the file or its header.
      column: the column (or None).
      message: what is wrong and what was expected.
      line: the line of the file where the row starts (None: row + 1).
      error_type: the exception class :meth:`error` builds.
    """

    file: str
    row: int | str | None
    column: str | None
    message: str
    line: int | None = None
    error_type: type[JaxcostError] = DataError

    def __str__(self) -> str:
        where = location(self.file, self.row, self.column, line=self.line)
        return " ".join(f"{where}: {self.message}".split())

    def error(self) -> JaxcostError:
        """This problem as an exception (``error_type``) with the same message."""
        return self.error_type(
            self.message,
            file=self.file,
            row=self.row,
            column=self.column,
            line=self.line,
        )


@dataclasses.dataclass(frozen=True)
class Table:
    """A validated table: per row the raw cells, the values, problems and fills.

    Attributes:
      file: the file name as given.
      header: the header as read.
      raw: per row, header -> cell text (as read).
      values: per row, column -> value (parsed; default where blank).
      problems: per row, the problems found (empty: the row is valid).
      fills: per row, ``column=value (reason)`` for every value filled in.
      lines: per row, the line of the file where the row starts.
    """

    file: str
    header: tuple[str, ...]
    raw: tuple[dict[str, str], ...]
    values: tuple[dict[str, Any], ...]
    problems: tuple[tuple[Problem, ...], ...]
    fills: tuple[tuple[str, ...], ...]
    lines: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.raw)

    def all_problems(self) -> list[Problem]:
        """Every problem, row by row."""
        return [p for row in self.problems for p in row]

    def valid_rows(self) -> list[int]:
        """0-based indices of the rows without problems."""
        return [i for i, p in enumerate(self.problems) if not p]


# ------------------------------------------------------------------ reading


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _read_csv(path: str | Path):
    """Header, rows, starting lines and cell counts of a CSV (see read_csv_rows)."""
    file = str(path)
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError("cannot read: file not found", file=file) from None
    except OSError as e:
        raise DataError(f"cannot read file: {e.strerror}", file=file) from None
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    widths: list[int] = []
    try:
        with fh:
            reader = csv.reader(fh)
            header = tuple(h.strip() for h in next(reader, []))
            if not any(header):
                raise DataError("empty file; expected a header row", file=file)
            start = reader.line_num + 1
            for cells in reader:
                if any(c.strip() for c in cells):
                    widths.append(len(cells))
                    cells = cells + [""] * (len(header) - len(cells))
                    rows.append(dict(zip(header, cells, strict=False)))
                    lines.append(start)
                start = reader.line_num + 1
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(
            f"cannot parse CSV ({e}); expected a UTF-8 CSV", file=file
        ) from None
    except OSError as e:  # a folder on some systems
        raise DataError(f"cannot read file: {e.strerror}", file=file) from None
    return header, rows, lines, widths


def read_csv_rows(
    path: str | Path,
) -> tuple[tuple[str, ...], list[dict[str, str]], list[int]]:
    """Header, rows (header -> text) and the starting line of each row of a CSV.

    Rows whose cells are all blank are skipped; cells past the header are dropped
    (:func:`read_table` reports them).

    Raises:
      DataError: the file is missing, unreadable, not UTF-8 or has no header.
    """
    header, rows, lines, _ = _read_csv(path)
    return header, rows, lines


def _cell(col: Column, value: Any, *, textual: bool) -> tuple[Any, str | None]:
    """(value, problem message or None) of one cell under ``col``: a CSV cell
    (``textual``; blank when empty) or a parsed TOML value (blank when absent)."""
    if (value is None) or (textual and _blank(value)):
        return col.default, None
    try:
        return col.parse(str(value).strip() if textual else value), None
    except JaxcostError as e:
        return None, e.detail


def validate_rows(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    file: str,
    lines: Sequence[int] | None = None,
    check_required: bool = True,
) -> tuple[list[dict[str, Any]], list[list[Problem]]]:
    """Parse every cell of every row with its column's parser; collect every problem.

    Blank cells take the column's ``default``; with ``check_required``, a blank
    required cell is a problem (callers that fill cells first check afterwards).
    Columns not in the schema are ignored (kept by the caller).

    Returns:
      (per row, column -> value; per row, the problems).
    """
    values, problems = [], []
    for i, row in enumerate(rows):
        line = None if lines is None else lines[i]
        out: dict[str, Any] = {}
        probs: list[Problem] = []
        for col in columns:
            cell = row.get(col.name)
            if _blank(cell) and col.required and check_required:
                out[col.name] = None
                probs.append(Problem(file, i + 1, col.name, BLANK, line))
                continue
            out[col.name], message = _cell(col, cell, textual=True)
            if message is not None:
                probs.append(Problem(file, i + 1, col.name, message, line))
        values.append(out)
        problems.append(probs)
    return values, problems


def _header_problems(
    header: Sequence[str], columns: Sequence[Column], file: str
) -> list[Problem]:
    probs = []
    names = {c.name for c in columns}
    for col in columns:
        if col.present and col.name not in header:
            probs.append(Problem(file, None, col.name, "missing required column"))
    seen: set[str] = set()
    for h in header:
        if h in names and h in seen:
            probs.append(
                Problem(file, None, h, "duplicated column; expected each column once")
            )
        seen.add(h)
    return probs


def duplicate_problems(
    values: Sequence[Mapping[str, Any]],
    column: str,
    *,
    file: str,
    lines: Sequence[int] | None = None,
    fold: bool = False,
    what: str = "value",
) -> list[Problem]:
    """A problem for every row whose ``column`` repeats an earlier row's value.

    Args:
      values: per row, column -> value (blank values are skipped).
      fold: compare case-insensitively.
      what: the noun of the message (``duplicated key 'H100' (first at row 2)``).
    """
    first: dict[Any, int] = {}
    probs = []
    for i, v in enumerate(values):
        value = v.get(column)
        if _blank(value):
            continue
        k = str(value).lower() if fold else value
        if k in first:
            probs.append(
                Problem(
                    file,
                    i + 1,
                    column,
                    f"duplicated {what} '{value}' (first at row {first[k]}); "
                    f"expected each {what} once",
                    None if lines is None else lines[i],
                )
            )
        else:
            first[k] = i + 1
    return probs


def read_table(
    path: str | Path,
    columns: Sequence[Column],
    *,
    unique: Iterable[str] = (),
    unique_folded: Iterable[str] = (),
    need_rows: str | None = None,
) -> Table:
    """Read a CSV and validate every row against ``columns``; collect every problem.

    Checks the header (every ``present`` column named, no schema column twice), the
    cells (:func:`validate_rows`), rows longer than the header, and the uniqueness of
    the ``unique`` columns (``unique_folded``: case-insensitively). Columns not in
    the schema are kept in ``Table.raw``.

    Args:
      path: the CSV.
      columns: the schema.
      need_rows: if given, a file without data rows is an error with this message
        (e.g. ``"no data rows; expected at least one chip"``).

    Returns:
      A :class:`Table`; rows with problems are kept with them (see
      :func:`raise_problems`).

    Raises:
      DataError: the file cannot be read, its header lacks a required column or
        repeats one (every header problem collected), or it has no data row and
        ``need_rows`` is given.
    """
    file = str(path)
    header, rows, lines, widths = _read_csv(path)
    raise_problems(_header_problems(header, columns, file))
    if need_rows is not None and not rows:
        raise DataError(need_rows, file=file)
    values, problems = validate_rows(rows, columns, file=file, lines=lines)
    for i, width in enumerate(widths):
        if width > len(header):
            problems[i].insert(
                0,
                Problem(
                    file,
                    i + 1,
                    None,
                    f"{width} cells but the header has {len(header)}; expected "
                    "one cell per column",
                    lines[i],
                ),
            )
    for name, fold in [(c, False) for c in unique] + [(c, True) for c in unique_folded]:
        dups = duplicate_problems(
            values, name, file=file, lines=lines, fold=fold, what=name
        )
        for p in dups:
            problems[p.row - 1].append(p)
    return Table(
        file=file,
        header=header,
        raw=tuple(dict(r) for r in rows),
        values=tuple(values),
        problems=tuple(tuple(p) for p in problems),
        fills=tuple(() for _ in rows),
        lines=tuple(lines),
    )


def validate_keys(
    table: Mapping[str, Any],
    columns: Sequence[Column],
    *,
    file: str,
    prefix: str = "",
    error_type: type[JaxcostError] = DataError,
) -> tuple[dict[str, Any], list[Problem]]:
    """Validate one TOML table (a mapping of parsed values) against ``columns``.

    Each value is parsed by its column's parser (as given, not as text); a missing
    required key and an unknown key (with the closest known one) are problems. Every
    problem names its key, ``key '<prefix><name>'``.

    Returns:
      (column -> value, default where missing; the problems).
    """
    known = [c.name for c in columns]
    probs: list[Problem] = []
    for k in table:
        if k not in known:
            close = difflib.get_close_matches(k, known, n=1)
            hint = (
                f"; did you mean '{close[0]}'?"
                if close
                else f"; expected one of {sorted(known)}"
            )
            probs.append(
                Problem(
                    file,
                    f"key '{prefix}{k}'",
                    None,
                    f"unknown key{hint}",
                    error_type=error_type,
                )
            )
    out: dict[str, Any] = {}
    for col in columns:
        where = f"key '{prefix}{col.name}'"
        value = table.get(col.name)
        if value is None and col.required:
            out[col.name] = None
            expected = col.doc or "a value"
            probs.append(
                Problem(
                    file,
                    where,
                    None,
                    f"missing; expected {expected}",
                    error_type=error_type,
                )
            )
            continue
        out[col.name], message = _cell(col, value, textual=False)
        if message is not None:
            probs.append(Problem(file, where, None, message, error_type=error_type))
    return out, probs


def _order(p: Problem) -> tuple[int, int]:
    if p.row is None:
        return (0, 0)
    if isinstance(p.row, int):
        return (1, p.row)
    return (1, 0)


def raise_problems(problems: Iterable[Problem]) -> None:
    """Raise the first problem (header first, then by row) if there is any.

    The error's message is the first problem's one line, followed by how many more
    the file has (``(1 of 3 problems in this file)``); ``err.problems`` holds them
    all, in order.

    Raises:
      JaxcostError: the first problem's ``error_type`` (a ``DataError`` unless the
        problem says otherwise).
    """
    probs = sorted(problems, key=_order)
    if not probs:
        return
    first = probs[0]
    message = first.message
    if len(probs) > 1:
        message += f" (1 of {len(probs)} problems in this file)"
    err = dataclasses.replace(first, message=message).error()
    err.problems = tuple(probs)
    raise err


def schema_markdown(columns: Sequence[Column]) -> str:
    """The schema as a markdown table (column, required, meaning and default)."""
    lines = ["| column | required | meaning and default |", "|---|---|---|"]
    for c in columns:
        lines.append(f"| `{c.name}` | {'yes' if c.required else ''} | {c.doc} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ cell parsers


def text(cell: str) -> str:
    """A text cell, as given (stripped)."""
    return cell


def number(
    *,
    positive: bool = False,
    nonnegative: bool = False,
    fraction: bool = False,
    whole: bool = False,
    unit: str = "",
) -> Callable[[str], float]:
    """A parser of finite numbers (``float``), with the stated bounds.

    Args:
      positive: the value must be > 0.
      nonnegative: the value must be >= 0.
      fraction: the value must lie in (0, 1].
      whole: the value must be a whole number (a count; still returned as float).
      unit: named in the message of a cell that is not a number (``"in SI units"``).
    """
    want = "a whole number" if whole else "a number"
    if unit:
        want += f" {unit}"

    def parse(cell: str) -> float:
        try:
            v = float(cell)
        except ValueError:
            message = f"value '{cell}' is not a number; expected {want}"
            raise DataError(message) from None
        if not math.isfinite(v):
            raise DataError(f"value '{cell}' is not finite; expected a finite number")
        if whole and v != round(v):
            raise DataError(f"value '{cell}' is not a whole number; expected a count")
        if positive and not v > 0:
            raise DataError(f"value '{cell}' must be > 0; expected a positive number")
        if nonnegative and v < 0:
            raise DataError(
                f"value '{cell}' must be >= 0; expected a non-negative number"
            )
        if fraction and not 0.0 < v <= 1.0:
            raise DataError(
                f"value '{cell}' is not a fraction; expected 0 < value <= 1"
            )
        return v

    return parse


_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")


def boolean(
    true: Sequence[str] = _TRUE, false: Sequence[str] = _FALSE
) -> Callable[[str], bool]:
    """A parser of booleans: the ``true`` and ``false`` words (case-insensitive)."""
    words = f"{'/'.join(true)} or {'/'.join(false)}"

    def parse(cell: str) -> bool:
        low = cell.lower()
        if low in true:
            return True
        if low in false:
            return False
        raise DataError(f"value '{cell}' is not a boolean; expected {words}")

    return parse


def one_of(*allowed: str, fold: bool = False) -> Callable[[str], str]:
    """A parser of a closed set of words (``fold``: case-insensitive, returned in
    lower case)."""

    def parse(cell: str) -> str:
        v = cell.lower() if fold else cell
        if v not in allowed:
            raise DataError(
                f"value '{cell}' is not allowed; expected one of {', '.join(allowed)}"
            )
        return v

    return parse


def provenance_columns(
    kinds: tuple[str, ...], *, locator_doc: str, kind_doc: str
) -> tuple[Column, ...]:
    """The provenance columns of a data table, every one in the header: ``source``
    (URL or DOI) and ``source_locator`` required, ``kind`` one of ``kinds``
    (required), ``notes`` optional."""
    return (
        Column("source", text, required=True, present=True, doc="URL or DOI"),
        Column(
            "source_locator", text, required=True, present=True, doc=locator_doc
        ),
        Column("kind", one_of(*kinds), required=True, present=True, doc=kind_doc),
    )
