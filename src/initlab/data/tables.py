"""Tables: a ``.csv`` (standard library) or ``.parquet`` (``pyarrow``, the ``parquet`` extra) file.

One column is the label or target (``target_column``); every other column is a feature.
A feature column whose every present value parses as a number is numeric; any other is
categorical and one-hot encoded, one column per category in sorted order (the categories are
recorded in ``meta["categories"]``, so the encoding is the same at every load of the file).
A row with a missing value (an empty cell, ``NA``, ``N/A``, ``NaN``, ``null``, ``None``, ``?``)
in any used column is dropped, never imputed, and the count is reported
(``meta["dropped_rows"]`` and a warning). ``inf`` parses as a number and is refused as
non-finite. The train/test split is initlab's fixed one (``initlab.data.prepare``).
"""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from initlab.errors import UserError, closest

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})


def _read_csv(path: Path) -> tuple[list[str], list[list[Any]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); expected a CSV table") from None
    except (OSError, csv.Error) as exc:
        raise UserError(f"cannot read {path} as CSV: {exc}") from None
    rows = [r for r in rows if r]
    if not rows:
        raise UserError(f"{path} is empty; expected a header row of column names, then data rows")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    for i, row in enumerate(body, 2):
        if len(row) != len(header):
            raise UserError(f"{path} line {i}: {len(row)} fields but the header has {len(header)} columns")
    return header, body


def _read_parquet(path: Path) -> tuple[list[str], list[list[Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("reading .parquet needs pyarrow: pip install 'initlab[parquet]' (or use a .csv)") from None
    try:
        table = pq.read_table(path).to_pydict()
    except Exception as exc:  # noqa: BLE001  (pyarrow raises many types for a bad file)
        raise UserError(f"cannot read {path} as Parquet: {exc}") from None
    header = [str(k) for k in table]
    columns = list(table.values())
    return header, [list(row) for row in zip(*columns)]


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def read_table(path: Path, target_column: str | None, task: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``{"x": (n, features) float64, "y": (n,)}`` and meta (columns, categories, dropped rows)."""
    header, body = _read_parquet(path) if path.suffix.lower() == ".parquet" else _read_csv(path)
    if target_column is None:
        raise UserError(
            f"{path} is a table: name its label or target column with --target-column "
            f"(target_column=); columns: {', '.join(header)}"
        )
    if target_column not in header:
        near = closest(target_column, header)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise UserError(
            f"--target-column {target_column!r} is not a column of {path}.{hint} Columns: {', '.join(header)}"
        )
    if header.count(target_column) > 1:
        raise UserError(
            f"{path}: column {target_column!r} appears {header.count(target_column)} times; names must be unique"
        )
    target = header.index(target_column)
    complete = [row for row in body if not any(_is_missing(v) for v in row)]
    dropped = len(body) - len(complete)
    if dropped:
        warnings.warn(f"{path}: dropped {dropped} of {len(body)} rows with missing values (not imputed)", stacklevel=3)
    if not complete:
        raise UserError(
            f"{path}: no complete rows ({len(body)} rows, {dropped} with missing values); "
            f"expected at least 2 rows with every column filled"
        )
    features, names, categories = [], [], {}
    for j, column in enumerate(header):
        if j == target:
            continue
        values = [_number(row[j]) for row in complete]
        if all(v is not None for v in values):
            features.append(np.asarray(values, dtype=np.float64)[:, None])
            names.append(column)
            continue
        raw = [str(row[j]).strip() for row in complete]
        cats = sorted(set(raw))
        categories[column] = cats
        index = {c: i for i, c in enumerate(cats)}
        onehot = np.zeros((len(raw), len(cats)))
        onehot[np.arange(len(raw)), [index[v] for v in raw]] = 1.0
        features.append(onehot)
        names += [f"{column}={c}" for c in cats]
    if not features:
        raise UserError(f"{path}: no feature columns besides the target {target_column!r}")
    y_values = [_number(row[target]) for row in complete]
    if any(v is None for v in y_values):
        bad = next(row[target] for row, v in zip(complete, y_values) if v is None)
        what = "labels that are not integers" if task == "classification" else "non-numeric targets"
        need = "integer class labels" if task == "classification" else "numbers for --task regression"
        raise UserError(f"{path}: column {target_column!r} holds {what} (e.g. {bad!r}); expected {need}")
    meta = {
        "columns": names,
        "target_column": target_column,
        "categories": categories,
        "dropped_rows": dropped,
        "rows": len(body),
    }
    return {"x": np.concatenate(features, axis=1), "y": np.asarray(y_values, dtype=np.float64)}, meta
