"""The jaxcost exception hierarchy.

Every error that bad *input* can cause is a :class:`JaxcostError` (a ``ValueError``).
Its message is one line that names the file, the place in it (row / key) and the
column, and says what was expected. The CLI prints ``str(err)`` on stderr and exits
with status 2; it never shows a traceback for these.
"""

from __future__ import annotations

__all__ = [
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


class JaxcostError(ValueError):
    """Base class of all input errors raised by jaxcost."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | str | None = None,
        column: str | None = None,
    ) -> None:
        self.file = file
        self.row = row
        self.column = column
        self.detail = message
        parts = []
        if file is not None:
            parts.append(str(file))
        if row is not None:
            parts.append(f"row {row}" if isinstance(row, int) else str(row))
        if column is not None:
            parts.append(f"column '{column}'")
        where = ", ".join(parts)
        text = f"{where}: {message}" if where else message
        super().__init__(" ".join(text.split()))  # always one line

    def in_file(self, path: str) -> JaxcostError:
        """This error naming ``path`` when it names no file (errors raised on
        in-memory frames); otherwise itself."""
        if self.file is not None:
            return self
        return type(self)(self.detail, file=path, row=self.row, column=self.column)


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
