"""How a trace looks in a notebook (an HTML waterfall) and a terminal (a rich tree).

Input is the canonical span row (DESIGN.md §3) plus ``depth``, one row per span of
one trace in tree order. Everything shown comes from user data, so every string that
reaches HTML is escaped and every string that reaches rich is appended as plain
``Text``, never parsed as markup. Values read the same here as in the list of traces,
because both take them from :mod:`pyflare.formatting`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text
from rich.tree import Tree

from pyflare import semconv
from pyflare.errors import InvalidArgumentError
from pyflare.formatting import (
    NAME_CHARS,
    format_cost,
    format_duration,
    format_tokens,
    is_null,
    opt_int,
    opt_str,
    traces_table,
    truncate,
)

__all__ = ["TraceView", "format_cost", "format_duration", "traces_table"]

DEFAULT_MAX_SPANS = 500
_TOOLTIP_ATTRS = 8
_INDENT_PX = 14
_MAX_INDENT_LEVELS = 24

# Kind -> colour, chosen to read on both white and near-black backgrounds.
_KIND_COLOURS: dict[str, str] = {
    "llm": "#8b5cf6",
    "agent": "#14b8a6",
    "chain": "#3b82f6",
    "workflow": "#6366f1",
    "task": "#6366f1",
    "tool": "#f59e0b",
    "retriever": "#22c55e",
    "embedding": "#06b6d4",
    "reranker": "#84cc16",
    "guardrail": "#f97316",
    "evaluator": "#ec4899",
    "inference": "#a855f7",
    "other": "#64748b",
}


# --- Reading rows -------------------------------------------------------------


def _as_map(value: object) -> dict[str, str]:
    """A string map from a dict, or from the list of pairs a pyarrow map column becomes."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    if is_null(value) or isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return {}
    out: dict[str, str] = {}
    for item in value:
        if isinstance(item, Mapping) and "key" in item:
            out[str(item["key"])] = str(item.get("value"))
        elif isinstance(item, tuple | list) and len(item) == 2:
            out[str(item[0])] = str(item[1])
    return out


def _event_names(value: object) -> list[str]:
    if is_null(value) or isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return []
    names = []
    for event in value:
        if isinstance(event, Mapping):
            attrs = _as_map(event.get("attributes"))
            message = attrs.get("exception.message")
            name = str(event.get("name", ""))
            names.append(f"{name}: {message}" if message else name)
    return names


def _time_ns(value: object) -> int | None:
    if is_null(value):
        return None
    try:
        return int(pd.Timestamp(value).value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _kind(attributes: Mapping[str, str], span_kind: str | None) -> str:
    kind = attributes.get(semconv.SPAN_KIND)
    if not kind and semconv.OI_SPAN_KIND in attributes:
        kind = semconv.OPENINFERENCE_KINDS.get(attributes[semconv.OI_SPAN_KIND], ("",))[0]
    return (kind or span_kind or "internal").lower()


@dataclass(frozen=True, slots=True)
class _Span:
    span_id: str
    name: str
    service: str
    kind: str
    is_error: bool
    status_message: str | None
    model: str | None
    start_ns: int
    end_ns: int
    depth: int
    orphan: bool
    input_tokens: int | None
    output_tokens: int | None
    tokens: int | None
    cost_micros: int | None
    input_preview: str | None
    output_preview: str | None
    attributes: dict[str, str]
    events: list[str]

    @property
    def duration_ns(self) -> int:
        return max(self.end_ns - self.start_ns, 0)

    @property
    def css_kind(self) -> str:
        return self.kind if self.kind in _KIND_COLOURS else "other"


def _depths(records: list[dict[str, Any]]) -> list[int]:
    """Depth from parent links, for frames that arrive without a ``depth`` column."""
    parents = {r.get("span_id"): r.get("parent_span_id") for r in records}
    out = []
    for record in records:
        depth, parent, seen = 0, record.get("parent_span_id"), set()
        while not is_null(parent) and parent in parents and parent not in seen:
            seen.add(parent)
            depth += 1
            parent = parents[parent]
        out.append(depth)
    return out


def _read_spans(df: pd.DataFrame) -> list[_Span]:
    records: list[dict[str, Any]] = [
        {str(k): v for k, v in r.items()} for r in df.to_dict("records")
    ]
    ids = {r.get("span_id") for r in records}
    fallback = _depths(records) if "depth" not in df.columns else [0] * len(records)
    spans = []
    for record, fallback_depth in zip(records, fallback, strict=True):
        attributes = _as_map(record.get("attributes"))
        start = _time_ns(record.get("start_time"))
        end = _time_ns(record.get("end_time"))
        duration = opt_int(record.get("duration_ns"))
        if start is None:
            start = end - duration if end is not None and duration is not None else 0
        end = end if end is not None else start + (duration or 0)
        input_tokens = opt_int(record.get("input_tokens"))
        output_tokens = opt_int(record.get("output_tokens"))
        tokens = opt_int(record.get("total_tokens"))
        if tokens is None and (input_tokens is not None or output_tokens is not None):
            tokens = (input_tokens or 0) + (output_tokens or 0)
        parent = record.get("parent_span_id")
        span_id = opt_str(record.get("span_id")) or ""
        spans.append(
            _Span(
                span_id=span_id,
                name=opt_str(record.get("operation_name")) or span_id or "(unnamed)",
                service=opt_str(record.get("service_name")) or "",
                kind=_kind(attributes, opt_str(record.get("span_kind"))),
                is_error=opt_str(record.get("status_code")) == "error",
                status_message=opt_str(record.get("status_message")),
                model=opt_str(record.get("model_id")),
                start_ns=start,
                end_ns=end,
                depth=max(opt_int(record.get("depth")) or fallback_depth, 0),
                orphan=not is_null(parent) and parent not in ids,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                tokens=tokens,
                cost_micros=opt_int(record.get("cost_micros")),
                input_preview=opt_str(record.get("input_preview")),
                output_preview=opt_str(record.get("output_preview")),
                attributes=attributes,
                events=_event_names(record.get("events")),
            )
        )
    return spans


def _sum_known(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


# --- HTML ---------------------------------------------------------------------


def _css() -> str:
    kinds = "".join(
        f".pyflare-trace .pf-bar.pf-k-{k}{{background:{c}}}"
        f".pyflare-trace .pf-badge.pf-k-{k}{{background:{c}2e;border-color:{c}99}}"
        for k, c in _KIND_COLOURS.items()
    )
    # Selectors carry a table class so they outrank notebook themes' table styles.
    return (
        ".pyflare-trace{font:12px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;"
        "color:inherit;margin:4px 0;max-width:100%;overflow-x:auto}"
        ".pyflare-trace .pf-head{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:baseline;"
        "padding:6px 8px;border-bottom:1px solid rgba(128,128,128,.35)}"
        ".pyflare-trace .pf-head b{font-weight:600}"
        ".pyflare-trace .pf-head code{font:11px ui-monospace,SFMono-Regular,Menlo,monospace;"
        "opacity:.8}"
        ".pyflare-trace .pf-stat{opacity:.85;font-variant-numeric:tabular-nums}"
        ".pyflare-trace .pf-stat.pf-bad{color:#ef4444;opacity:1;font-weight:600}"
        ".pyflare-trace table.pf-table{width:100%;table-layout:fixed;border-collapse:collapse;"
        "border:none;margin:0;font-size:12px;background:transparent;color:inherit}"
        ".pyflare-trace table.pf-table th,.pyflare-trace table.pf-table td{padding:2px 8px;"
        "border:none;text-align:left;vertical-align:middle;white-space:nowrap;overflow:hidden;"
        "text-overflow:ellipsis;background:transparent;color:inherit;max-width:none}"
        ".pyflare-trace table.pf-table th{font-weight:600;opacity:.7;font-size:11px;"
        "border-bottom:1px solid rgba(128,128,128,.25)}"
        ".pyflare-trace table.pf-table tbody tr,"
        ".pyflare-trace table.pf-table tbody tr:nth-child(odd){background:transparent}"
        ".pyflare-trace table.pf-table tbody tr:hover{background:rgba(128,128,128,.12)}"
        ".pyflare-trace table.pf-table td.pf-num,.pyflare-trace table.pf-table th.pf-num"
        "{text-align:right;font-variant-numeric:tabular-nums}"
        ".pyflare-trace .pf-axis{display:flex;justify-content:space-between;font-weight:400}"
        ".pyflare-trace .pf-badge{display:inline-block;font-size:10px;line-height:14px;"
        "padding:0 5px;margin-right:6px;border:1px solid;border-radius:7px;opacity:.95}"
        ".pyflare-trace .pf-err .pf-name{color:#ef4444;font-weight:600}"
        ".pyflare-trace .pf-orphan{opacity:.6;font-style:italic;margin-left:6px}"
        ".pyflare-trace .pf-track{position:relative;height:12px;border-radius:2px;"
        "background:rgba(128,128,128,.08);background-image:repeating-linear-gradient(90deg,"
        "transparent 0 calc(25% - 1px),rgba(128,128,128,.22) calc(25% - 1px) 25%)}"
        ".pyflare-trace .pf-bar{position:absolute;top:1px;bottom:1px;min-width:2px;"
        "border-radius:2px;opacity:.9}"
        ".pyflare-trace tr.pf-err .pf-bar{background:#ef4444}"
        ".pyflare-trace .pf-msg{margin-left:8px;font-size:11px;opacity:.85}"
        ".pyflare-trace .pf-dim{opacity:.55}"
        ".pyflare-trace .pf-more td{font-style:italic;opacity:.7}" + kinds
    )


def _tooltip(span: _Span) -> str:
    facts = [span.kind, span.service, format_duration(span.duration_ns)]
    lines = [truncate(span.name, 300), " · ".join(f for f in facts if f)]
    if span.is_error:
        lines.append(f"error: {span.status_message or '(no message)'}")
    if span.orphan:
        lines.append("parent span not in this trace")
    if span.model:
        lines.append(f"model: {span.model}")
    if span.input_tokens is not None or span.output_tokens is not None:
        lines.append(
            f"tokens: {format_tokens(span.input_tokens)} in, "
            f"{format_tokens(span.output_tokens)} out"
        )
    for label, preview in (("input", span.input_preview), ("output", span.output_preview)):
        if preview:
            lines.append(f"{label}: {truncate(preview, 300)}")
    shown = [
        f"{k} = {truncate(v, 80)}"
        for k, v in span.attributes.items()
        if not k.startswith(("pyflare.input.", "pyflare.output."))
    ]
    lines.extend(shown[:_TOOLTIP_ATTRS])
    if len(shown) > _TOOLTIP_ATTRS:
        lines.append(f"… {len(shown) - _TOOLTIP_ATTRS} more attributes")
    lines.extend(f"event: {truncate(e, 120)}" for e in span.events[:5])
    return "\n".join(lines)


def _bar_style(span: _Span, t0: int, total: int) -> str:
    if total <= 0:
        return "left:0.00%;width:0.00%"
    left = min(max((span.start_ns - t0) / total * 100, 0.0), 100.0)
    width = min(span.duration_ns / total * 100, 100.0 - left)
    if left > 99.5:  # anchor right so min-width keeps the bar inside the track
        return f"right:0;width:{width:.2f}%"
    return f"left:{left:.2f}%;width:{width:.2f}%"


# --- The view -----------------------------------------------------------------


class TraceView:
    """One trace, shown as a waterfall in Jupyter and a tree in a rich terminal."""

    def __init__(self, spans: pd.DataFrame, *, max_spans: int = DEFAULT_MAX_SPANS) -> None:
        if not isinstance(spans, pd.DataFrame):
            raise InvalidArgumentError(
                f"TraceView needs a pandas DataFrame of spans, got {type(spans).__name__}"
            )
        if max_spans < 1:
            raise InvalidArgumentError(f"max_spans must be at least 1, got {max_spans}")
        trace_ids: list[object] = (
            list(spans["trace_id"].dropna().unique()) if "trace_id" in spans.columns else []
        )
        if len(trace_ids) > 1:
            raise InvalidArgumentError(
                f"TraceView shows one trace, got {len(trace_ids)} trace ids; "
                "filter the frame to one trace_id first"
            )
        self._df = spans
        self._max_spans = max_spans
        self._trace_id: str | None = str(trace_ids[0]) if trace_ids else None
        self._rows = _read_spans(spans)
        self._t0 = min((s.start_ns for s in self._rows), default=0)
        self._t1 = max((s.end_ns for s in self._rows), default=0)

    @property
    def spans(self) -> pd.DataFrame:
        """The frame this view was built from."""
        return self._df

    @property
    def trace_id(self) -> str | None:
        return self._trace_id

    @property
    def duration_ns(self) -> int:
        """From the earliest span start to the latest span end."""
        return max(self._t1 - self._t0, 0)

    @property
    def span_count(self) -> int:
        return len(self._rows)

    @property
    def error_count(self) -> int:
        return sum(s.is_error for s in self._rows)

    @property
    def total_tokens(self) -> int | None:
        return _sum_known(s.tokens for s in self._rows)

    @property
    def cost_micros(self) -> int | None:
        return _sum_known(s.cost_micros for s in self._rows)

    def _summary(self) -> list[tuple[str, bool]]:
        """The header's facts, each with whether it is bad news."""
        parts = [
            (format_duration(self.duration_ns), False),
            (f"{self.span_count:,} span{'s' if self.span_count != 1 else ''}", False),
        ]
        if self.error_count:
            parts.append(
                (f"{self.error_count:,} error{'s' if self.error_count != 1 else ''}", True)
            )
        if self.total_tokens is not None:
            parts.append((f"{self.total_tokens:,} tokens", False))
        parts.append((f"cost {format_cost(self.cost_micros)}", False))
        return parts

    def _started(self) -> str:
        if not self._rows:
            return ""
        return pd.Timestamp(self._t0, unit="ns").strftime("%Y-%m-%d %H:%M:%S UTC")

    def _summary_text(self) -> str:
        return ", ".join(text for text, _ in self._summary())

    def _short_id(self) -> str:
        return (self._trace_id or "(empty)")[:16]

    def __repr__(self) -> str:
        return f"<TraceView {self._short_id()} {self._summary_text()}>"

    # --- Jupyter -------------------------------------------------------------

    def _repr_html_(self) -> str:
        esc = html.escape
        shown = self._rows[: self._max_spans]
        hidden = self._rows[self._max_spans :]
        has_model = any(s.model for s in shown)
        has_tokens = any(s.tokens is not None for s in shown)
        has_cost = any(s.cost_micros is not None for s in shown)
        total = self.duration_ns

        stats = [
            f'<span class="pf-stat{" pf-bad" if bad else ""}">{esc(text)}</span>'
            for text, bad in self._summary()
        ]
        head = (
            f'<div class="pf-head"><b>Trace</b>'
            f'<code title="{esc(self._trace_id or "")}">{esc(self._trace_id or "(empty)")}</code>'
            f'{"".join(stats)}<span class="pf-stat pf-dim">{esc(self._started())}</span></div>'
        )
        if not self._rows:
            return f'<div class="pyflare-trace"><style>{_css()}</style>{head}</div>'

        cols = ['<col style="width:32%">', "<col>", '<col style="width:76px">']
        ths = [
            "<th>Span</th>",
            f'<th><div class="pf-axis"><span>0</span><span>{esc(format_duration(total // 2))}'
            f"</span><span>{esc(format_duration(total))}</span></div></th>",
            '<th class="pf-num">Duration</th>',
        ]
        for present, width, th in (
            (has_model, "170px", "<th>Model</th>"),
            (has_tokens, "72px", '<th class="pf-num">Tokens</th>'),
            (has_cost, "84px", '<th class="pf-num">Cost</th>'),
        ):
            if present:
                cols.append(f'<col style="width:{width}">')
                ths.append(th)

        body = []
        for span in shown:
            indent = min(span.depth, _MAX_INDENT_LEVELS) * _INDENT_PX
            orphan = '<span class="pf-orphan">(orphan)</span>' if span.orphan else ""
            marker = "✕ " if span.is_error else ""
            message = (
                f'<span class="pf-msg">{esc(truncate(span.status_message, NAME_CHARS))}</span>'
                if span.is_error and span.status_message
                else ""
            )
            cells = [
                f'<td style="padding-left:{8 + indent}px">'
                f'<span class="pf-badge pf-k-{span.css_kind}">{esc(truncate(span.kind, 16))}</span>'
                f'<span class="pf-name">{marker}{esc(truncate(span.name, NAME_CHARS))}</span>'
                f"{message}{orphan}</td>",
                f'<td><div class="pf-track"><div class="pf-bar pf-k-{span.css_kind}" '
                f'style="{_bar_style(span, self._t0, total)}"></div></div></td>',
                f'<td class="pf-num">{esc(format_duration(span.duration_ns))}</td>',
            ]
            if has_model:
                cells.append(f'<td class="pf-dim">{esc(span.model or "")}</td>')
            if has_tokens:
                cells.append(
                    f'<td class="pf-num">{esc(format_tokens(span.tokens)) if span.tokens is not None else ""}</td>'
                )
            if has_cost:
                # '—' only where a price was expected: a model call that wasn't priced.
                priced = span.cost_micros is not None or span.model or span.tokens is not None
                cost = esc(format_cost(span.cost_micros)) if priced else ""
                cells.append(f'<td class="pf-num">{cost}</td>')
            row_class = ' class="pf-err"' if span.is_error else ""
            body.append(f'<tr{row_class} title="{esc(_tooltip(span))}">{"".join(cells)}</tr>')
        if hidden:
            errors = sum(s.is_error for s in hidden)
            note = f" ({errors} with errors)" if errors else ""
            body.append(
                f'<tr class="pf-more"><td colspan="{len(ths)}">… {len(hidden):,} more spans'
                f"{note}</td></tr>"
            )
        return (
            f'<div class="pyflare-trace"><style>{_css()}</style>{head}'
            f'<table class="pf-table"><colgroup>{"".join(cols)}</colgroup>'
            f"<thead><tr>{''.join(ths)}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        )

    # --- Terminal ------------------------------------------------------------

    def _label(self, span: _Span) -> Text:
        style = "bold red" if span.is_error else "bold"
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(truncate(span.name, NAME_CHARS), style=style)
        text.append(f" [{span.kind}]", style=_KIND_COLOURS.get(span.css_kind, "dim"))
        text.append(f"  {format_duration(span.duration_ns)}", style="yellow")
        if span.model:
            text.append(f"  {span.model}", style="cyan")
        if span.tokens is not None:
            text.append(f"  {span.tokens:,} tok")
        if span.cost_micros is not None:
            text.append(f"  {format_cost(span.cost_micros)}", style="green")
        if span.orphan:
            text.append("  (orphan)", style="dim italic")
        if span.is_error:
            text.append(f"  ✗ {truncate(span.status_message or 'error', 100)}", style="red")
        previews = [
            f"{label} {truncate(value, 60)}"
            for label, value in (("in:", span.input_preview), ("out:", span.output_preview))
            if value
        ]
        if previews:
            text.append("\n" + "  ".join(previews), style="dim")
        return text

    def _tree(self) -> Tree:
        header = Text(no_wrap=True, overflow="ellipsis")
        header.append("Trace ", style="bold")
        header.append(self._short_id(), style="bold magenta")
        for text, bad in self._summary():
            header.append(f"  {text}", style="bold red" if bad else "dim")
        header.append(f"  {self._started()}", style="dim")
        tree = Tree(header, guide_style="dim")
        stack: list[Tree] = [tree]
        for span in self._rows[: self._max_spans]:
            level = min(span.depth, len(stack) - 1)
            del stack[level + 1 :]
            stack.append(stack[level].add(self._label(span)))
        hidden = self._rows[self._max_spans :]
        if hidden:
            tree.add(Text(f"… {len(hidden):,} more spans", style="dim italic"))
        return tree

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self._tree()
