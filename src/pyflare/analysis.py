"""The notebook API: traces, spans, costs and SQL over the local store as DataFrames."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pyflare._time import parse_duration_ns, parse_instant
from pyflare.config import load_settings, store_url
from pyflare.errors import ConfigError, InvalidArgumentError, QueryError, StoreError
from pyflare.store.base import MAX_SQL_ROWS, TraceQuery

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from pyflare.store.base import SpanStore
    from pyflare.views import TraceView

__all__ = [
    "costs",
    "daily_cost_series",
    "get_trace",
    "open_local_store",
    "recompute_costs",
    "spans",
    "sql",
    "traces",
]

_STATUSES = ("ok", "error", "unset")


def open_local_store(store: str | None = None, *, writable: bool = False) -> tuple[SpanStore, bool]:
    """The store to read: this process's own, or the one named, opened read-only.

    ``store`` is a ``duckdb:///path`` URL or a file path; ``writable`` opens a
    store this process doesn't own read-write. Returns ``(store, owned)``;
    ``owned`` means the caller must close it.
    """
    from pathlib import Path

    from pyflare.store import open_store
    from pyflare.store.duckdb import parse_store_url
    from pyflare.tracing.setup import current_pipeline, flush

    store = _store_argument(store)
    pipeline = current_pipeline()
    own_url = None if pipeline is None or pipeline.local is None else pipeline.settings.local_store
    if own_url is not None and (store is None or _same_file(store, own_url)):
        # DuckDB won't open a file this process already has open with other settings
        # (read-only): read through the pipeline's own connection.
        flush()  # make spans that just ended visible
        own = pipeline.store() if pipeline is not None else None
        if own is None:
            error = pipeline.local.last_error if pipeline and pipeline.local else None
            raise error or StoreError("the local store is not open")
        return own, False
    # This process's settings (init() arguments included), else the environment's.
    settings = pipeline.settings if pipeline is not None else load_settings()
    url = store or settings.local_store
    if url is None:
        raise StoreError(
            "no local store is configured (remote mode); pass store='duckdb:///path' to read one"
        )
    path = parse_store_url(url)
    if path != ":memory:" and not Path(path).exists():
        raise StoreError(
            f"there is no PyFlare store at {path}; run code under pyflare.init() first, or "
            "name the file with store='duckdb:///path/to/file.duckdb'"
        )
    return open_store(url, read_only=not writable), True


def _store_argument(store: object) -> str | None:
    if store is None:
        return None
    if not isinstance(store, str):
        raise InvalidArgumentError(
            f"store must be a string such as 'duckdb:///path/to/file.duckdb', got {store!r}"
        )
    try:
        url = store_url(store)
    except ConfigError as exc:
        raise InvalidArgumentError(str(exc)) from None
    if url is None or url == "none":
        raise InvalidArgumentError(
            f"store={store!r} names no store; expected duckdb:///path/to/file.duckdb or a path"
        )
    return url


def _same_file(url: str, other: str) -> bool:
    """Whether two store URLs name the same file (``duckdb:///x`` and ``duckdb:///./x``)."""
    from pathlib import Path

    from pyflare.store.duckdb import parse_store_url

    a, b = parse_store_url(url), parse_store_url(other)
    if ":memory:" in (a, b):
        return a == b
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _whole_decimals_as_int64(table: pa.Table) -> pa.Table:
    """DuckDB sums BIGINTs (tokens, cost_micros) to HUGEINT, which reaches Arrow as
    decimal128(38, 0) and pandas as Decimal objects; make them integers when they fit."""
    import pyarrow as pa

    for index, column in enumerate(table.schema):
        if pa.types.is_decimal(column.type) and column.type.scale == 0:
            try:
                cast = table.column(index).cast(pa.int64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue  # beyond int64: keep the exact decimals
            table = table.set_column(index, pa.field(column.name, pa.int64()), cast)
    return table


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa

    mapping = {
        pa.int64(): pd.Int64Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.string(): pd.StringDtype(),
        pa.large_string(): pd.StringDtype(),
        pa.bool_(): pd.BooleanDtype(),
    }
    table = _whole_decimals_as_int64(table)
    # Maps become dicts: what a notebook user indexes with df.attributes[0]["k"].
    frame: pd.DataFrame = table.to_pandas(types_mapper=mapping.get, maps_as_pydicts="strict")
    return frame


def _with_store(store: str | None, action: Any) -> Any:
    handle, owned = open_local_store(store)
    try:
        return action(handle)
    finally:
        if owned:
            handle.close()


def traces(
    *,
    service: str | None = None,
    model_id: str | None = None,
    status: str | None = None,
    since: Any = None,
    until: Any = None,
    min_duration: str | int | None = None,
    attributes: Mapping[str, str] | None = None,
    text: str | None = None,
    limit: int = 100,
    offset: int = 0,
    store: str | None = None,
) -> pd.DataFrame:
    """Recent traces, newest first, one row each.

    ``since``/``until`` take "1h", "30m", ISO 8601 strings or datetimes;
    ``min_duration`` takes "500ms", "2s" or nanoseconds; ``attributes`` keeps
    traces with a span carrying every key=value given; ``text`` searches input
    and output previews.
    """
    if status is not None and status not in _STATUSES:
        raise InvalidArgumentError(
            f"status={status!r} is not valid; expected one of {', '.join(_STATUSES)}"
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise InvalidArgumentError(f"limit must be an integer from 1 to 10000, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidArgumentError(f"offset must be a non-negative integer, got {offset!r}")
    if isinstance(min_duration, str):
        min_duration_ns: int | None = parse_duration_ns(min_duration, name="min_duration")
    elif min_duration is None or (
        isinstance(min_duration, int) and not isinstance(min_duration, bool)
    ):
        min_duration_ns = min_duration
    else:
        raise InvalidArgumentError(
            f"min_duration must be like '500ms' or nanoseconds, got {min_duration!r}"
        )
    if attributes is not None and not (
        isinstance(attributes, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in attributes.items())
    ):
        raise InvalidArgumentError("attributes must be a mapping of strings to strings")
    query = TraceQuery(
        service=service,
        model_id=model_id,
        status=status,  # type: ignore[arg-type]
        since_ns=parse_instant(since, name="since"),
        until_ns=parse_instant(until, name="until"),
        min_duration_ns=min_duration_ns,
        attributes=dict(attributes or {}),
        text=text,
        limit=limit,
        offset=offset,
    )
    return _to_pandas(_with_store(store, lambda s: s.traces(query)))


_MIN_PREFIX = 6


def _check_trace_id(trace_id: object) -> str:
    """A full trace id, or a prefix of one (as ``pyflare traces`` prints), lower-cased."""
    if isinstance(trace_id, str) and _MIN_PREFIX <= len(trace_id) <= 32:
        try:
            int(trace_id, 16)
        except ValueError:
            pass
        else:
            return trace_id.lower()
    raise InvalidArgumentError(
        f"trace_id must be 32 hex characters (or a unique prefix of at least {_MIN_PREFIX}), "
        f"got {trace_id!r}"
    )


def _resolve_trace_id(store: SpanStore, trace_id: str) -> str:
    if len(trace_id) == 32:
        return trace_id
    matches = (
        store.sql(
            "SELECT DISTINCT trace_id FROM traces WHERE trace_id LIKE ? ORDER BY 1 LIMIT 3",
            [trace_id + "%"],
        )
        .column(0)
        .to_pylist()
    )
    if not matches:
        raise InvalidArgumentError(f"no trace id starts with {trace_id!r}")
    if len(matches) > 1:
        raise InvalidArgumentError(
            f"{trace_id!r} is ambiguous: it starts {', '.join(matches[:2])}"
            f"{' and more' if len(matches) > 2 else ''}; give more characters"
        )
    return str(matches[0])


def spans(trace_id: str, *, store: str | None = None) -> pd.DataFrame:
    """The spans of one trace in tree order, with a ``depth`` column.

    ``trace_id`` may be a unique prefix (at least 6 hex characters), as
    ``pyflare traces`` shows them.
    """
    checked = _check_trace_id(trace_id)
    return _to_pandas(_with_store(store, lambda s: s.spans(_resolve_trace_id(s, checked))))


def get_trace(trace_id: str, *, store: str | None = None) -> TraceView:
    """One trace as a view: a waterfall in Jupyter, a tree in the terminal."""
    from pyflare.views import TraceView

    return TraceView(spans(trace_id, store=store))


def sql(
    query: str,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
    *,
    max_rows: int = MAX_SQL_ROWS,
    store: str | None = None,
) -> pd.DataFrame:
    """Run one read-only SELECT over PyFlare's tables (parameters bound, never formatted)."""
    if not isinstance(query, str):
        raise InvalidArgumentError(f"sql() needs the query as a string, got {type(query).__name__}")
    return _to_pandas(_with_store(store, lambda s: s.sql(query, params, max_rows=max_rows)))


_DAY_NS = 86_400 * 1_000_000_000
_RECOMPUTE_PAGE = 20_000


def costs(
    group_by: str | Sequence[str] | None = "model_id",
    *,
    since: Any = "24h",
    until: Any = None,
    filters: Mapping[str, str] | None = None,
    store: str | None = None,
) -> pd.DataFrame:
    """What model calls cost, per group: one row per value of ``group_by``.

    ``group_by`` names any of model_id, user_id, feature_id, team, environment,
    provider, service_name, hour, day (one name, a list, or None for one total
    row). ``since``/``until`` take "24h", "7d", ISO 8601 strings or datetimes;
    ``filters`` keeps calls whose columns equal the values given. Columns: the
    groups, requests, input/output/total tokens, ``cost_micros`` (exact integer
    micro-dollars, missing when no call of the group could be priced),
    ``cost_usd`` (float, for display), unpriced_requests and
    estimated_token_requests.
    """
    names = [group_by] if isinstance(group_by, str) else list(group_by or ())
    if not all(isinstance(name, str) for name in names):
        raise InvalidArgumentError(
            f"group_by must be a column name or a list of them, got {group_by!r}"
        )
    since_ns = parse_instant(since, name="since")
    until_ns = parse_instant(until, name="until")
    if filters is not None and not isinstance(filters, Mapping):
        raise InvalidArgumentError(f"filters must be a mapping of column to value, got {filters!r}")

    def query(handle: SpanStore) -> pa.Table:
        try:
            return handle.cost_summary(since_ns, until_ns, names, dict(filters or {}))
        except QueryError as exc:
            raise InvalidArgumentError(str(exc)) from None

    frame = _to_pandas(_with_store(store, query))
    position = list(frame.columns).index("cost_micros") + 1
    frame.insert(position, "cost_usd", frame["cost_micros"].astype("Float64") / 1_000_000)
    return frame


def daily_cost_series(
    store: SpanStore,
    *,
    model_id: str | None = None,
    team: str | None = None,
    history_days: int = 90,
    now_ns: int | None = None,
) -> tuple[list[dt.date], list[int]]:
    """(days, cost micros) over the last ``history_days`` complete UTC days, for a forecast.

    The series starts at the first day with a call and runs to yesterday; days
    without calls are 0. Empty when there were no calls.
    """
    import time

    now = time.time_ns() if now_ns is None else now_ns
    today = now - now % _DAY_NS  # complete days only: today's partial cost would read as a drop
    rows = store.daily_costs(today - history_days * _DAY_NS, today, model_id=model_id, team=team)
    by_day = {r["day"]: int(r["cost_micros"]) for r in rows.to_pylist()}
    if not by_day:
        return [], []
    first = min(by_day)
    last = dt.datetime.fromtimestamp(today // 1_000_000_000, dt.UTC).date() - dt.timedelta(days=1)
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    return days, [by_day.get(day, 0) for day in days]


def recompute_costs(
    since: Any,
    until: Any = None,
    *,
    store: str | None = None,
    price_book: Any = None,
) -> dict[str, int | None]:
    """Reprice stored model calls that started in ``[since, until)`` with today's prices.

    Costs PyFlare computed are recomputed with ``price_book`` (the default one:
    the catalogue and the user's prices, their history applied by each call's
    time); costs a span carried itself are kept. Spans get their new
    ``cost_micros`` and the ``costs`` table its rows. Returns counts: spans read,
    spans changed, cost rows written, and the range's total cost (micros)
    and unpriced calls before and after.
    """
    import pyarrow as pa

    from pyflare.cost.processor import CostProcessor

    since_ns = parse_instant(since, name="since")
    until_ns = parse_instant(until, name="until")
    if since_ns is None:
        raise InvalidArgumentError("since is required: the start of the calls to reprice")
    processor = CostProcessor(price_book)

    def run(handle: SpanStore) -> dict[str, int | None]:
        before = handle.cost_summary(since_ns, until_ns).to_pylist()[0]
        read = changed = written = 0
        after: tuple[int, str, str] | None = None
        while True:
            page = handle.model_spans(since_ns, until_ns, after=after, limit=_RECOMPUTE_PAGE)
            if page.num_rows == 0:
                break
            read += page.num_rows
            output = processor.recompute(page)
            changed += handle.update_span_costs(output.spans)
            written += handle.write_costs(output.costs)
            last = page.num_rows - 1
            start = page.column("start_time").cast(pa.int64())[last].as_py()
            after = (
                start,
                page.column("trace_id")[last].as_py(),
                page.column("span_id")[last].as_py(),
            )
        now = handle.cost_summary(since_ns, until_ns).to_pylist()[0]
        return {
            "spans": read,
            "spans_changed": changed,
            "cost_rows": written,
            "cost_micros_before": before["cost_micros"],
            "cost_micros_after": now["cost_micros"],
            "unpriced_before": before["unpriced_requests"],
            "unpriced_after": now["unpriced_requests"],
        }

    handle, owned = open_local_store(_store_argument(store), writable=True)
    try:
        result: dict[str, int | None] = run(handle)
        return result
    finally:
        if owned:
            handle.close()
