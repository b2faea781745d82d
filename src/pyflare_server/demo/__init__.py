"""Generated traffic for ``pyflare demo``: what a small AI product sends a PyFlare server.

Three services report through the OpenTelemetry SDK and its standard OTLP/HTTP
exporter, the path any instrumented application takes:

* ``rag-api``, a support chatbot: retrieval-augmented answers with OTel GenAI
  attributes (``gen_ai.*``): query embedding, vector search, sometimes a
  rerank, then a chat model (a few models from two providers) with token usage
  and cost. Latencies spread log-normally; about 4% of requests hit a rate
  limit (retried), a timeout or a vector store failure. Some questions carry an
  e-mail address or a phone number, for the server's PII masking to find.
* ``support-agent``, an agent in OpenInference's vocabulary (``llm.*``,
  ``input.value``): a model call, a tool call, a second model call.
* ``fraud-scoring``, a classifier whose features are span attributes
  (``pyflare.feature.*``) next to its prediction (``pyflare.prediction.*``).
  After ``drift_after_s`` of the timeline its inputs drift: larger amounts,
  other countries, fewer card-present payments, younger accounts, and so more
  transactions scored as fraud.

Spans carry realistic timestamps and durations without waiting for them: each
trace is planned, then recorded with explicit start and end times, ending at
the moment it is sent (or earlier, for back-filled history). The same seed
gives the same traffic (content, timing, errors); trace ids are random, so
running twice adds new traces rather than repeating stored ones.
"""

from __future__ import annotations

from pyflare_server.demo.traffic import TrafficStats, run_traffic, run_traffic_sync, traces_url

__all__ = ["TrafficStats", "run_traffic", "run_traffic_sync", "traces_url"]
