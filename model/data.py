"""Loading data, checking it against an experiment's schema, and temporal splits.

Every problem in a file is reported at once, naming the column and the first offending rows
(row numbers count data rows from 1, as a spreadsheet shows them below the header).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kernel.errors import BadInputError, DataValidationError
from model.rules import (
    CONTROL,
    MAX_ID,
    MAX_YEAR,
    MIN_YEAR,
    is_gap,
    is_id_type,
    is_number,
    month_problem,
)
from model.spec import ALLOW_MISSING_HINT, ExperimentSpec, Feature

_SHOWN_ROWS = 5


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame.

    Raises
    ------
    BadInputError
        If the file is missing, unreadable, or not CSV/Parquet.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise BadInputError(f"{path}: unsupported file type '{suffix}'; use .csv or .parquet")
    if not path.is_file():
        raise BadInputError(f"{path}: no such file")
    try:
        if suffix == ".csv":
            return pd.read_csv(path, low_memory=False)
        return pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise BadInputError(f"{path}: cannot read it as {suffix[1:]}: {err}") from err
    except Exception as err:  # pyarrow raises its own error types for corrupt files
        raise BadInputError(f"{path}: cannot read it as {suffix[1:]}: {err}") from err


def _filterable(kind: Any) -> bool:
    """Whether a month filter can be pushed into the Parquet reader for a column of this type."""
    import pyarrow as pa

    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_date(kind)
        or pa.types.is_timestamp(kind)
    )


def read_month(
    path: str | Path,
    time_column: str,
    period: str | None,
    *,
    keep: Sequence[str] = (),
    threads: bool = True,
) -> tuple[pd.DataFrame, bool]:
    """The rows of one month of a CSV or Parquet file: ``period``, or the latest without one.

    For Parquet only the time column is read whole; the month's rows are then read with a
    filter pushed into the reader (each row group is filtered as it is decoded), so memory
    follows the month, not the file. The rows, their order and their types are those
    :func:`read_table` gives for that month, so every later check names the same rows. Where
    the month cannot be chosen (no time column, a value that is not a month, no row of
    ``period``) only the time column and ``keep`` (e.g. the id column) are returned, for the
    caller's own checks to name the problem. A CSV cannot be filtered while it is read: it is
    read whole. Returns the frame and whether the filter was pushed down. ``threads=False``:
    Parquet is decoded on the calling thread alone (Arrow's pool left out), for a read beside
    other work on a small machine, where the pool's threads would take the cores that work
    needs.

    Raises
    ------
    BadInputError
        As :func:`read_table`.
    """
    path = Path(path)
    if period is not None and month_problem(period) is not None:
        return read_table(path), False  # the caller's check names the problem
    if path.suffix.lower() not in (".parquet", ".pq") or not path.is_file():
        return read_table(path), False
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        if time_column not in schema.names or not _filterable(schema.field(time_column).type):
            return read_table(path), False
        times = pq.read_table(
            path,
            columns=[time_column],
            read_dictionary=_texts(schema, [time_column]),
            use_threads=threads,
        ).column(time_column)
        distinct = _plain(pc.unique(times))
    except Exception as err:  # pyarrow raises its own error types for corrupt files
        raise BadInputError(f"{path}: cannot read it as parquet: {err}") from err
    narrow = [c for c in (*keep, time_column) if c in schema.names]
    if distinct.null_count:
        return pd.read_parquet(path, columns=list(dict.fromkeys(narrow))), True
    values = pd.Series(distinct.to_pandas())
    problems, ordinals = parse_periods(values, time_column)
    if problems or ordinals is None or len(values) == 0:
        return pd.read_parquet(path, columns=list(dict.fromkeys(narrow))), True
    wanted = int(pd.Period(period, freq="M").ordinal) if period is not None else int(ordinals.max())
    chosen = distinct.filter(_arrow_mask(ordinals == wanted))
    if len(chosen) == 0:
        return pd.read_parquet(path, columns=list(dict.fromkeys(narrow))), True
    try:
        return _read_rows_of(path, time_column, chosen, threads=threads), True
    except Exception as err:  # pyarrow raises its own error types for corrupt files
        raise BadInputError(f"{path}: cannot read it as parquet: {err}") from err


#: A column with more distinct values than this is not taken for a month column by
#: :func:`month_column` (a file of months holds a few dozen).
_MONTHS_AT_MOST = 1_000


def month_column(path: str | Path, period: str, *, threads: bool = True) -> str | None:
    """The one column of a Parquet file whose values are all months and include ``period``, or
    ``None`` (not Parquet, no such column, more than one, or anything unreadable).

    A guess at the file's time column before the model that names it is loaded, so that the
    month can be read while the model is verified: whoever reads with it must check the guess
    against the verified model's time column, and read again if they differ. ``threads``: as
    :func:`read_month`'s.
    """
    path = Path(path)
    if month_problem(period) is not None or path.suffix.lower() not in (".parquet", ".pq"):
        return None
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = int(pd.Period(period, freq="M").ordinal)
    found = []
    try:
        schema = pq.read_schema(path)
        first = pq.ParquetFile(path).metadata
        for position, field in enumerate(schema):
            if not _filterable(field.type) or not _months_at_ends(first, position, field.name):
                continue
            column = pq.read_table(
                path,
                columns=[field.name],
                read_dictionary=_texts(schema, [field.name]),
                use_threads=threads,
            ).column(field.name)
            distinct = _plain(pc.unique(column))
            if distinct.null_count or not 0 < len(distinct) <= _MONTHS_AT_MOST:
                continue
            problems, ordinals = parse_periods(pd.Series(distinct.to_pandas()), field.name)
            if not problems and ordinals is not None and wanted in ordinals:
                found.append(field.name)
    except Exception:  # a guess only: the reading that counts names any problem
        return None
    return found[0] if len(found) == 1 else None


def _months_at_ends(metadata: Any, position: int, name: str) -> bool:
    """Whether the first row group's smallest and largest values of column ``position`` are
    months (``True`` when the file keeps no statistics: then the column is read to tell)."""
    if metadata.num_row_groups == 0:
        return False
    try:
        statistics = metadata.row_group(0).column(position).statistics
    except (IndexError, ValueError):
        return True
    if statistics is None or not statistics.has_min_max:
        return True
    problems, _ = parse_periods(pd.Series([str(statistics.min), str(statistics.max)]), name)
    return not problems


def _texts(schema: Any, names: Sequence[str] | None = None) -> list[str]:
    """The text columns of ``schema`` (of ``names`` only, when given)."""
    import pyarrow as pa

    return [
        field.name
        for field in schema
        if (names is None or field.name in names)
        and (pa.types.is_string(field.type) or pa.types.is_large_string(field.type))
    ]


def _plain(values: Any) -> Any:
    """Distinct values read as a dictionary, as the plain values they stand for."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(values.type):
        return pc.unique(values.dictionary_decode())
    return values


def _read_rows_of(
    path: Path, time_column: str, values: Any, *, threads: bool = True
) -> pd.DataFrame:
    """The rows whose ``time_column`` is one of ``values``, read one row group at a time (each
    filtered as soon as it is decoded, so at most one whole row group is in memory), as
    ``pd.read_parquet`` would have typed them.

    Text columns are decoded as dictionaries (a file's text columns hold a few distinct values
    each, stored as a dictionary: no string is made for a row of another month), then given the
    file's own types once filtered; the frame is made by the pandas conversion
    ``pd.read_parquet`` itself uses (``Table.to_pandas`` with the file's pandas metadata).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    parquet = pq.ParquetFile(path, read_dictionary=_texts(schema))
    parts = []
    for group in range(parquet.num_row_groups):
        table = parquet.read_row_group(group, use_pandas_metadata=True, use_threads=threads)
        parts.append(table.filter(pc.is_in(table.column(time_column), value_set=values)))
        del table
    if not parts:
        return pd.read_parquet(path)  # no row group: the empty frame, typed
    rows = pa.concat_tables(parts).cast(schema)
    del parts
    frame = rows.to_pandas(use_threads=threads)
    if schema.metadata and b"PANDAS_ATTRS" in schema.metadata:  # as pd.read_parquet keeps them
        frame.attrs = json.loads(schema.metadata[b"PANDAS_ATTRS"])
    return frame


def _arrow_mask(mask: np.ndarray) -> Any:
    """A boolean numpy mask as an Arrow array (for ``Array.filter``)."""
    import pyarrow as pa

    return pa.array(mask, type=pa.bool_())


def fingerprint(frame: pd.DataFrame) -> str:
    """A stable sha256 of a frame's columns and values (row order matters)."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest.update(hashed.tobytes())
    return digest.hexdigest()


def row_list(mask: np.ndarray) -> str:
    """The rows flagged by ``mask``, 1-based as a spreadsheet numbers them, the first few named."""
    positions = np.flatnonzero(mask)
    shown = ", ".join(str(p + 1) for p in positions[:_SHOWN_ROWS])
    more = f" and {len(positions) - _SHOWN_ROWS} more" if len(positions) > _SHOWN_ROWS else ""
    noun = "row" if len(positions) == 1 else "rows"
    return f"{noun} {shown}{more}"


def _typed(column: pd.Series, accept: Any) -> np.ndarray:
    """Rows whose value is present but fails ``accept`` (a test of one value's type)."""
    values = column.to_numpy(dtype=object)
    return np.fromiter(
        (not (is_gap(v) or accept(v)) for v in values), dtype=bool, count=len(values)
    )


def _not_numbers(column: pd.Series) -> np.ndarray:
    """Rows holding something other than a real number (text such as "3", a boolean): the
    rule of :func:`model.rules.is_number`, a column at a time."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return column.notna().to_numpy()
    if pd.api.types.is_numeric_dtype(dtype):
        return np.zeros(len(column), dtype=bool)
    return _typed(column, is_number)


def _check_numeric(column: pd.Series, feature: Feature) -> tuple[list[str], np.ndarray | None]:
    name = feature.name
    bad_type = _not_numbers(column)
    if bad_type.any():
        return [f"column '{name}': not a number in {row_list(bad_type)}"], None
    values = pd.to_numeric(column, errors="coerce")
    array = values.to_numpy(dtype=float, na_value=np.nan)
    problems = []
    gaps = np.isnan(array)
    if gaps.any() and not feature.allows_missing:
        problems.append(f"column '{name}': {missing_problem(gaps)}")
    infinite = np.isinf(array)
    if infinite.any():
        problems.append(f"column '{name}': infinite in {row_list(infinite)}")
    finite = np.where(np.isfinite(array), array, 0.0)
    if feature.kind in ("count", "binary"):
        fractional = finite != np.round(finite)
        if fractional.any():
            problems.append(f"column '{name}': not a whole number in {row_list(fractional)}")
    lower, upper = feature.lower, feature.upper
    if lower is not None and (finite < lower).any():
        problems.append(
            f"column '{name}': below the minimum {lower:g} in {row_list(finite < lower)}"
        )
    if upper is not None and (finite > upper).any():
        problems.append(
            f"column '{name}': above the maximum {upper:g} in {row_list(finite > upper)}"
        )
    return problems, array


def missing_problem(gaps: np.ndarray) -> str:
    """What a validation error says about gaps in a feature that refuses them."""
    return f"missing in {row_list(gaps)}; {ALLOW_MISSING_HINT}"


def _not_text(column: pd.Series) -> np.ndarray:
    """Rows of a category column holding something other than text (a number, a boolean)."""
    dtype = column.dtype
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return np.zeros(len(column), dtype=bool)
    if isinstance(dtype, pd.CategoricalDtype):
        return _not_text(column.astype(object))
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return column.notna().to_numpy()
    return _typed(column, lambda v: isinstance(v, str))


def _check_category(column: pd.Series, feature: Feature) -> list[str]:
    missing = column.isna().to_numpy()
    if missing.any() and not feature.allows_missing:
        return [f"column '{feature.name}': {missing_problem(missing)}"]
    not_text = _not_text(column)
    if not_text.any():
        seen = sorted({repr(v) for v in column[not_text]})[:_SHOWN_ROWS]
        return [
            f"column '{feature.name}': not text in {row_list(not_text)} ({', '.join(seen)}; "
            f"allowed: {', '.join(feature.categories)})"
        ]
    as_text = column.astype(str)
    unknown = ~(as_text.isin(feature.categories).to_numpy() | missing)
    if unknown.any():
        seen = sorted(set(as_text[unknown]))[:_SHOWN_ROWS]
        return [
            f"column '{feature.name}': unknown categories {', '.join(repr(s) for s in seen)} "
            f"in {row_list(unknown)} (allowed: {', '.join(feature.categories)})"
        ]
    return []


def _not_ids(column: pd.Series) -> np.ndarray:
    """Rows holding something other than text or a whole number (a float, a boolean)."""
    dtype = column.dtype
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return np.zeros(len(column), dtype=bool)
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
        return column.notna().to_numpy()
    if pd.api.types.is_integer_dtype(dtype):
        return np.zeros(len(column), dtype=bool)
    return _typed(column, is_id_type)


def id_problems(column: pd.Series, name: str) -> list[str]:
    """The id rule (:func:`model.rules.id_problem`) over a column: text or whole numbers of 1 to
    :data:`model.rules.MAX_ID` characters without control characters, none missing."""
    missing = column.isna().to_numpy()
    if missing.any():
        return [f"column '{name}': missing in {row_list(missing)}"]
    wrong = _not_ids(column)
    if wrong.any():
        return [f"column '{name}': not an id (text or a whole number) in {row_list(wrong)}"]
    if pd.api.types.is_integer_dtype(column.dtype):
        # A whole number's text has 1 to 20 characters (below MAX_ID) and no control character:
        # nothing to check, and no million strings made to check it.
        return []
    text = column.astype(str)
    lengths = text.str.len().to_numpy()
    problems = []
    bad_length = (lengths < 1) | (lengths > MAX_ID)
    if bad_length.any():
        problems.append(
            f"column '{name}': an id has 1 to {MAX_ID} characters, not so in {row_list(bad_length)}"
        )
    control = text.str.contains(CONTROL.pattern, regex=True).to_numpy(dtype=bool)
    if control.any():
        problems.append(f"column '{name}': control characters in {row_list(control)}")
    return problems


def parse_periods(column: pd.Series, name: str) -> tuple[list[str], np.ndarray | None]:
    """Turn a time column ('YYYY-MM', dates or pandas periods) into month ordinals.

    Each distinct value is parsed once (a million rows hold a few dozen months).
    """
    codes, distinct = pd.factorize(column.astype(str))
    values = pd.Index(distinct)
    try:
        periods = pd.PeriodIndex(pd.to_datetime(values, format="mixed"), freq="M")
    except (ValueError, TypeError, OverflowError):
        parsed = pd.to_datetime(values, errors="coerce", format="mixed")
        bad = np.asarray(parsed.isna())[codes]
        return [f"column '{name}': not a month (expected YYYY-MM) in {row_list(bad)}"], None
    missing = np.asarray(periods.isna())[codes]
    if missing.any():
        return [f"column '{name}': missing in {row_list(missing)}"], None
    years = np.asarray(periods.year)[codes]
    outside = (years < MIN_YEAR) | (years > MAX_YEAR)
    if outside.any():
        return [
            f"column '{name}': a month of a year outside {MIN_YEAR} to {MAX_YEAR} in "
            f"{row_list(outside)}"
        ], None
    return [], periods.asi8.astype(np.int64)[codes]


def ordinal_to_period(ordinal: int) -> str:
    """A month ordinal back to 'YYYY-MM'."""
    return str(pd.Period(ordinal=ordinal, freq="M"))


def validate_features(
    frame: pd.DataFrame, features: Sequence[Feature]
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Check each feature column's type, range and categories.

    Returns
    -------
    problems : list of str
        One line per column with problems, naming the rows.
    columns : dict
        Clean arrays: floats for numbers, strings (object) for categories; a gap in a feature
        with ``missing = "allowed"`` is NaN in both (a float NaN in the object array).
    """
    problems: list[str] = []
    columns: dict[str, np.ndarray] = {}
    for feature in features:
        column = frame[feature.name]
        if feature.kind == "category":
            problems += _check_category(column, feature)
            clean = column.astype(str).to_numpy(dtype=object)
            if feature.allows_missing:
                clean[column.isna().to_numpy()] = np.nan
            columns[feature.name] = clean
        else:
            found, array = _check_numeric(column, feature)
            problems += found
            if array is not None:
                columns[feature.name] = array
    return problems, columns


@dataclass(frozen=True)
class Dataset:
    """A data set that passed validation.

    Attributes
    ----------
    frame : DataFrame
        Id, period ordinal (``__period``), features (numbers as float, categories as strings),
        sensitive attributes (strings) and, when present, the label (int 0/1).
    fingerprint : str
        sha256 of the validated source frame.
    """

    frame: pd.DataFrame
    spec: ExperimentSpec
    fingerprint: str

    PERIOD = "__period"

    @property
    def ids(self) -> np.ndarray:
        return self.frame[self.spec.data.id_column].to_numpy()

    @property
    def periods(self) -> np.ndarray:
        return self.frame[self.PERIOD].to_numpy()

    @property
    def features(self) -> pd.DataFrame:
        return self.frame[list(self.spec.feature_names)]

    @property
    def labels(self) -> np.ndarray:
        return self.frame[self.spec.label.column].to_numpy(dtype=np.int8)

    def sensitive(self, attribute: str) -> np.ndarray:
        return self.frame[attribute].to_numpy()

    @property
    def accepted(self) -> np.ndarray | None:
        """1 in a period an outreach offer was accepted, when the spec names the column and the
        data has it (see :mod:`model.feedback`)."""
        column = self.spec.data.accepted_column
        if column is None or column not in self.frame.columns:
            return None
        return self.frame[column].to_numpy(dtype=np.int8)

    @property
    def truth(self) -> np.ndarray | None:
        """Ground-truth outcomes, when the spec names a truth column and the data has it."""
        column = self.spec.label.truth_column
        if column is None or column not in self.frame.columns:
            return None
        return self.frame[column].to_numpy(dtype=np.int8)

    def source_frame(self) -> pd.DataFrame:
        """The validated rows as a file would hold them: the time column back as 'YYYY-MM'."""
        out = self.frame.drop(columns=[self.PERIOD])
        labels = pd.PeriodIndex.from_ordinals(self.frame[self.PERIOD], freq="M").astype(str)
        out.insert(1, self.spec.data.time_column, labels.to_numpy())
        return out

    def subset(self, mask: np.ndarray) -> Dataset:
        return Dataset(self.frame.loc[mask].reset_index(drop=True), self.spec, self.fingerprint)


def validate(
    frame: pd.DataFrame,
    spec: ExperimentSpec,
    *,
    require_label: bool = True,
    require_sensitive: bool = True,
) -> Dataset:
    """Check a frame against the spec's schema and return the clean :class:`Dataset`.

    Checks: missing and unexpected columns, types, ranges, NaN and infinity, unknown categories,
    labels other than 0/1, unparseable periods, duplicate (id, period) keys. Every problem is
    listed at once.

    Raises
    ------
    DataValidationError
        Naming columns and rows.
    """
    data = spec.data
    required = [data.id_column, data.time_column, *spec.feature_names]
    if require_sensitive:
        required += list(spec.sensitive_attributes)
    if require_label:
        required.append(spec.label.column)
        if data.accepted_column:  # training needs it to find the treated rows
            required.append(data.accepted_column)
    optional = {spec.label.column, *spec.sensitive_attributes, *data.ignore_columns}
    if data.accepted_column:
        optional.add(data.accepted_column)
    truth = spec.label.truth_column
    if truth:
        optional.add(truth)
    if data.area_column:
        optional.add(data.area_column)
    problems: list[str] = []
    missing = [c for c in required if c not in frame.columns]
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    extra = [c for c in frame.columns if c not in set(required) | optional]
    if extra:
        problems.append(
            f"unexpected columns: {', '.join(map(str, extra))} "
            "(list them under data.ignore_columns to allow them)"
        )
    duplicated = frame.columns[frame.columns.duplicated()]
    if len(duplicated):
        problems.append(f"duplicated column names: {', '.join(map(str, duplicated))}")
    if len(frame) == 0:
        problems.append("the file has no rows")
    if problems:
        raise DataValidationError(
            "the data does not match the experiment's schema", details=problems
        )

    out: dict[str, object] = {}
    ids = frame[data.id_column]
    problems += id_problems(ids, data.id_column)
    out[data.id_column] = ids.astype(str).to_numpy() if ids.dtype == object else ids.to_numpy()
    period_problems, ordinals = parse_periods(frame[data.time_column], data.time_column)
    problems += period_problems
    feature_problems, feature_columns = validate_features(frame, spec.features)
    problems += feature_problems
    out.update(feature_columns)
    present_sensitive = [a for a in spec.sensitive_attributes if a in frame.columns]
    for attribute in present_sensitive:
        column = frame[attribute]
        if column.isna().any():
            problems.append(
                f"column '{attribute}': missing in {row_list(column.isna().to_numpy())}"
            )
        out[attribute] = column.astype(str).to_numpy(dtype=object)
    # The recorded label, the ground truth and who accepted an offer: all 0/1, never missing.
    for outcome in (spec.label.column, truth, data.accepted_column):
        if outcome and outcome in frame.columns:
            values = pd.to_numeric(frame[outcome], errors="coerce")
            bad = ~values.isin([0, 1]).to_numpy()
            if bad.any():
                problems.append(f"column '{outcome}': not 0 or 1 in {row_list(bad)}")
            else:
                out[outcome] = values.to_numpy(dtype=np.int8)
    if ordinals is not None and not ids.isna().any():
        keys = pd.DataFrame({"id": ids.to_numpy(), "period": ordinals})
        dup = keys.duplicated(keep="first").to_numpy()
        if dup.any():
            problems.append(
                f"duplicate ({data.id_column}, {data.time_column}) keys: {row_list(dup)} repeat "
                "an earlier row"
            )
    if problems:
        raise DataValidationError(
            "the data does not match the experiment's schema", details=problems
        )
    area = data.area_column
    if area is not None and area in frame.columns and area not in out:
        out[area] = frame[area].astype("str").to_numpy()
    out[Dataset.PERIOD] = ordinals
    clean = pd.DataFrame(out)
    return Dataset(clean, spec, fingerprint(frame))


@dataclass(frozen=True)
class TemporalSplit:
    """One rolling split, in month ordinals.

    The model is fitted on ``fit_periods``, calibrated on ``calibration_period`` and validated on
    ``validation_periods`` (consecutive months). Every training period ends at least the label
    horizon before the first validation period, so every training label was observable when the
    model would have been used.
    """

    fit_periods: tuple[int, ...]
    calibration_period: int
    validation_periods: tuple[int, ...]

    @property
    def train_periods(self) -> tuple[int, ...]:
        return (*self.fit_periods, self.calibration_period)

    @property
    def validation_period(self) -> int:
        """The latest validation period."""
        return self.validation_periods[-1]

    def describe(self) -> str:
        first, last = self.fit_periods[0], self.calibration_period
        validation = ordinal_to_period(self.validation_periods[0])
        if len(self.validation_periods) > 1:
            validation += f"..{ordinal_to_period(self.validation_periods[-1])}"
        return f"train {ordinal_to_period(first)}..{ordinal_to_period(last)}, validate {validation}"


def temporal_splits(
    periods: Sequence[int] | np.ndarray,
    *,
    splits: int,
    horizon: int,
    step: int,
    min_train_periods: int,
    window: int = 1,
    latest_window: int | None = None,
) -> list[TemporalSplit]:
    """Rolling-origin splits ending at the latest period, oldest first.

    Parameters
    ----------
    periods : sequence of int
        The month ordinals present in the data.
    splits : int
        How many validation windows (the latest, then every ``step`` months back).
    horizon : int
        The label's horizon in months; training rows end ``horizon`` months before validation.
    step : int
        Months between the ends of consecutive validation windows.
    min_train_periods : int
        The fewest training periods a split may have (one of them calibrates).
    window : int
        Months in each validation window.
    latest_window : int, optional
        Months in the latest split's window (the one the release audit reads); ``window`` if
        not given.

    Raises
    ------
    BadInputError
        If the data spans too few periods for the requested splits.
    """
    available = sorted({int(p) for p in periods})
    present = set(available)
    out: list[TemporalSplit] = []
    latest = available[-1]
    widest = max(window, latest_window or window)
    for i in range(splits):
        end = latest - i * step
        months = latest_window if i == 0 and latest_window else window
        validation = tuple(p for p in range(end - months + 1, end + 1) if p in present)
        if not validation:
            continue
        train = [p for p in available if p <= validation[0] - horizon]
        if len(train) < max(min_train_periods, 2):
            break
        out.append(TemporalSplit(tuple(train[:-1]), train[-1], validation))
    if len(out) < splits:
        needed = horizon + widest - 1 + (splits - 1) * step + max(min_train_periods, 2)
        raise BadInputError(
            f"the data spans {len(available)} periods, too few for {splits} temporal splits with a "
            f"{horizon}-month label horizon, {widest}-month validation windows, {step}-month steps "
            f"and at least {min_train_periods} training periods; need at least {needed} periods"
        )
    return sorted(out, key=lambda s: s.validation_period)
