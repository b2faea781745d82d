"""``pyflare demo``: the server, fed by generated traffic, then a look at what arrived."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Any

from pyflare.formatting import format_cost
from pyflare_server.app import ServerCore
from pyflare_server.server import Listeners, serve
from pyflare_server.settings import ServerSettings

__all__ = ["run_demo"]

_SUMMARY_SQL = """
SELECT coalesce(model_id, '(no model)') AS model,
       count(*) AS spans,
       count(*) FILTER (WHERE status_code = 'error') AS errors,
       CAST(quantile_cont(duration_ns, 0.5) / 1e6 AS BIGINT) AS p50_ms,
       CAST(quantile_cont(duration_ns, 0.95) / 1e6 AS BIGINT) AS p95_ms,
       CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
       CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
       CAST(sum(cost_micros) AS BIGINT) AS cost_micros
FROM traces
WHERE model_id IS NOT NULL
GROUP BY ALL
ORDER BY spans DESC
"""


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _summary(core: ServerCore) -> str:
    from pyflare.store.base import TraceQuery

    total = core.store.count_traces(TraceQuery())
    errors = core.store.count_traces(TraceQuery(status="error"))
    rows: list[dict[str, Any]] = core.store.sql(_SUMMARY_SQL).to_pylist()
    lines = [f"\n{total} traces stored ({errors} with errors). By model:\n"]
    lines.append(
        f"  {'model':<28}{'spans':>7}{'errors':>8}{'p50 ms':>8}{'p95 ms':>8}"
        f"{'tokens in':>11}{'tokens out':>11}{'cost':>11}\n"
    )
    for row in rows:
        cost = format_cost(row["cost_micros"]) if row["cost_micros"] is not None else "-"
        lines.append(
            f"  {row['model']:<28}{row['spans']:>7}{row['errors']:>8}{row['p50_ms']:>8}"
            f"{row['p95_ms']:>8}{row['input_tokens'] or 0:>11}{row['output_tokens'] or 0:>11}"
            f"{cost:>11}\n"
        )
    return "".join(lines)


def _demo_credentials(settings: ServerSettings, core: ServerCore) -> tuple[dict[str, str], str]:
    """With auth on (an exposed --host), keys for the traffic and for the curl examples.

    Returns the traffic's OTLP headers and the curl option to show (both empty
    when auth is off).
    """
    from pyflare_server.auth.exposure import auth_enabled
    from pyflare_server.auth.keys import create_key

    if not auth_enabled(settings):
        return {}, ""
    header = settings.server.auth.api_key_header
    ingest = create_key(core.store, "ingest", name="pyflare demo traffic")
    reader = create_key(core.store, "developer", name="pyflare demo reader")
    _write(
        "Auth is on (the server listens beyond this machine): the demo's traffic sends an "
        f"ingest key, and this developer key reads the API:\n  {reader.key}\n"
        "Manage keys with `pyflare keys list|create|revoke` once the demo has stopped.\n"
    )
    return {header: ingest.key}, f" -H '{header}: {reader.key}'"


async def run_demo(
    settings: ServerSettings,
    *,
    duration_s: float | None,
    rate: float,
    seed: int,
    backfill_s: float = 600.0,
) -> int:
    """Serve, send ``backfill_s`` of history, show a summary, then live traffic.

    The live part lasts ``duration_s`` (None: until Ctrl-C or SIGTERM).
    """
    from pyflare_server.demo import run_traffic

    stop = asyncio.Event()
    ready: asyncio.Future[tuple[Listeners, ServerCore]] = asyncio.get_running_loop().create_future()

    def on_ready(listeners: Listeners, core: ServerCore) -> None:
        ready.set_result((listeners, core))

    server = asyncio.create_task(serve(settings, stop=stop, on_ready=on_ready))
    while not ready.done() and not server.done():
        await asyncio.sleep(0.05)
    if not ready.done():
        await server  # raises the reason it could not start
        return 1
    listeners, core = ready.result()
    # Ctrl-C stops the traffic first, then the server: the traffic's last batch
    # must not meet a server that is already shutting down.
    traffic_stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ValueError, NotImplementedError, RuntimeError):
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, traffic_stop.set)
    host, port = listeners.otlp_http.rsplit(":", 1)
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    api_host, api_port = listeners.api.rsplit(":", 1)
    api_host = "127.0.0.1" if api_host in ("0.0.0.0", "::") else api_host
    endpoint = f"http://{host}:{port}"
    api = f"http://{api_host}:{api_port}"
    headers, curl = _demo_credentials(settings, core)
    _write(
        f"PyFlare demo: OTLP/HTTP {endpoint}, OTLP/gRPC {listeners.otlp_grpc}, API {api}, "
        f"store {settings.server.store}\n"
        f"Sending the last {backfill_s / 60:g} minutes of a RAG chatbot, an agent and a fraud "
        "classifier (whose inputs drift halfway)…\n"
    )
    try:
        history = await run_traffic(
            endpoint,
            duration_s=0,
            backfill_s=backfill_s,
            drift_after_s=backfill_s / 2,
            rate=rate,
            seed=seed,
            stop=traffic_stop,
            headers=headers,
        )
        _write(
            f"Sent {history.traces} traces ({history.spans} spans, "
            f"{history.error_traces} of them failed)."
        )
        _write(_summary(core))
        _write(
            "\nTry:\n"
            f"  curl{curl} '{api}/api/v1/traces?limit=5'\n"
            f"  curl{curl} '{api}/api/v1/traces?status=error&service=rag-api&limit=5'\n"
            f"  curl {api}/metrics\n"
            f"  send your own: pyflare.init(endpoint='{endpoint}')\n"
        )
        if not traffic_stop.is_set() and (duration_s is None or duration_s > 0):
            _write(
                f"Live traffic continues at {rate:g} traces/s; "
                + ("Ctrl-C stops the demo.\n" if duration_s is None else f"for {duration_s:g} s.\n")
            )
            await run_traffic(
                endpoint,
                duration_s=duration_s,
                drift_after_s=0,  # the classifier stays drifted
                rate=rate,
                seed=seed + 1,
                stop=traffic_stop,
                headers=headers,
            )
    finally:
        stop.set()
        await server
    _write("Demo stopped; everything sent is stored.\n")
    return 0
