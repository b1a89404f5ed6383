"""The project's one error type and its input-error flavour.

Every problem an operator can fix (a bad file, an inconsistent setting, an
impossible request) is raised as :class:`EvdcError`, whose message is a single
line. The CLI prints it and exits with code 2; library users catch it.
"""

from __future__ import annotations


class EvdcError(Exception):
    """Any error evdc reports to its user: one line, no traceback needed."""


class InputError(EvdcError):
    """A problem in one place of a scenario file.

    ``row`` is the spreadsheet row: the header is row 1, the first data row is
    row 2, so it matches the line number of a CSV file without embedded newlines.
    """

    def __init__(self, file: str, message: str, row: int | None = None, column: str | None = None):
        self.file = file
        self.row = row
        self.column = column
        self.detail = message
        where = [file]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column}")
        super().__init__(f"{', '.join(where)}: {message}")
