"""The jaxcost exception hierarchy.

Every error that bad *input* can cause is a :class:`JaxcostError` (a ``ValueError``).
Its message is one line that names the file, the place in it (row / key) and the
column, and says what was expected. The CLI prints ``str(err)`` on stderr and exits
with status 2; it never shows a traceback for these.

Rows of every table are numbered one way (:func:`location`): ``row N`` is the N-th
data row, 1-based, the header excluded, and the physical line of the file is given
beside it::

    chips.csv row 3 (line 4), column 'hbm_bytes_per_s': value 'fast' is not a number

A place that is not a row (a TOML key, a rule, a model) is named as given
(``scenario.toml, key 'limits.pue': ...``); a header problem names no row.
"""

from __future__ import annotations

import numbers

__all__ = [
    "location",
    "JaxcostError",
    "DataError",
    "UnknownChipError",
    "RegimeError",
    "ScenarioError",
    "InfeasibleError",
    "ParamsError",
    "PlanError",
    "NumericalError",
]


def location(
    file: str | None,
    row: int | str | None = None,
    column: str | None = None,
    *,
    line: int | None = None,
) -> str:
    """Where a problem is, in the one form every message uses.

    ``file row N (line M), column 'c'``: N is the 1-based data row (header
    excluded), M the line of the file where the row starts (the header is line 1;
    M = N + 1 unless ``line`` says otherwise, e.g. after blank lines or multi-line
    cells). A ``row`` that is text (``"key 'limits.pue'"``, ``"rule 3"``) is used as
    given: ``file, key 'limits.pue', column 'c'``. Missing parts are left out.
    """
    parts = []
    if isinstance(row, numbers.Integral) and not isinstance(row, bool):
        row = int(row)
        head = f"row {row} (line {row + 1 if line is None else line})"
        parts.append(head if file is None else f"{file} {head}")
    else:
        if file is not None:
            parts.append(str(file))
        if row is not None:
            parts.append(str(row))
    if column is not None:
        parts.append(f"column '{column}'")
    return ", ".join(parts)


class JaxcostError(ValueError):
    """Base class of all input errors raised by jaxcost.

    Attributes:
      file, row, column, line: the place (see :func:`location`); None where unknown.
      detail: the message without the place.
      problems: every problem found in the file when the error stands for a
        validated table (the first one is the message); empty otherwise.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | str | None = None,
        column: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file = file
        self.row = row
        self.column = column
        self.line = line
        self.detail = message
        self.problems: tuple = ()
        where = location(file, row, column, line=line)
        text = f"{where}: {message}" if where else message
        super().__init__(" ".join(text.split()))  # always one line

    def in_file(self, path: str) -> JaxcostError:
        """This error naming ``path`` when it names no file (errors raised on
        in-memory frames); otherwise itself."""
        if self.file is not None:
            return self
        return type(self)(
            self.detail, file=path, row=self.row, column=self.column, line=self.line
        )


class DataError(JaxcostError):
    """A CSV (chips, benchmarks, runs) is malformed: missing column, bad cell, ..."""


class UnknownChipError(DataError):
    """A chip name or key that is not in the chip database."""


class RegimeError(JaxcostError):
    """An export-control regime file is malformed (syntax, unknown name, type)."""


class ScenarioError(JaxcostError):
    """A scenario TOML file is malformed or asks for something impossible."""


class InfeasibleError(ScenarioError):
    """The optimisation problem has no feasible point; the message names the binding
    constraint."""


class ParamsError(JaxcostError):
    """A parameters JSON file is malformed, of the wrong version, or non-finite."""


class PlanError(JaxcostError):
    """A parallel plan is invalid for its model and cluster."""


class NumericalError(JaxcostError):
    """A computation produced non-finite values (e.g. a diverging fit)."""
