"""Filling a Qt table from rows: one way to show numbers in every widget."""

from __future__ import annotations

import math
from collections.abc import Sequence

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem


def cell_text(value, float_format: str = "{:.3f}") -> str:
    """Floats with ``float_format`` ('-' when not finite), None as '', anything else as str."""
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else float_format.format(value)
    return "" if value is None else str(value)


def fill_table(
    table: QTableWidget,
    rows,
    columns: Sequence[str] | None = None,
    *,
    headers: Sequence[str] | None = None,
    float_format: str = "{:.3f}",
) -> None:
    """Show ``rows`` (a DataFrame or a list of dicts) in ``table``, read-only.

    ``columns`` picks and orders the keys (default: the DataFrame's columns); ``headers`` replaces
    the header labels (default: the column names for a DataFrame, unchanged for dict rows).
    """
    if hasattr(rows, "to_dict"):  # a pandas DataFrame
        columns = list(columns or rows.columns)
        headers = headers or [str(c) for c in columns]
        rows = rows.to_dict("records")
    if columns is None:
        raise ValueError("fill_table needs columns for rows given as dicts")
    table.setRowCount(len(rows))
    table.setColumnCount(len(columns))
    if headers is not None:
        table.setHorizontalHeaderLabels(list(headers))
    for i, row in enumerate(rows):
        for j, key in enumerate(columns):
            item = QTableWidgetItem(cell_text(row.get(key), float_format))
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            table.setItem(i, j, item)
    table.resizeColumnsToContents()
