"""Cost of model calls: prices, token counts, attribution, the cost processor.

- :mod:`pyflare.cost.prices`: :class:`PriceBook` (user prices with history over the
  genai-prices catalogue), :class:`ModelPrice`, :class:`CallCost`, integer micro-dollars.
- :mod:`pyflare.cost.tokens`: offline token counts when a provider reports none.
- :mod:`pyflare.cost.attribution`: who and what a call's cost belongs to.
- :mod:`pyflare.cost.processor`: :class:`CostProcessor`, pricing Arrow span batches.

Importing this package loads none of genai-prices, pyarrow or bpe-openai; each loads
on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Attribution",
    "CallCost",
    "CostOutput",
    "CostProcessor",
    "ModelPrice",
    "PriceBook",
    "TokenCount",
    "count_message_tokens",
    "count_tokens",
    "detect_provider",
]

_LAZY = {
    "Attribution": "pyflare.cost.attribution",
    "CallCost": "pyflare.cost.prices",
    "CostOutput": "pyflare.cost.processor",
    "CostProcessor": "pyflare.cost.processor",
    "ModelPrice": "pyflare.cost.prices",
    "PriceBook": "pyflare.cost.prices",
    "TokenCount": "pyflare.cost.tokens",
    "count_message_tokens": "pyflare.cost.tokens",
    "count_tokens": "pyflare.cost.tokens",
    "detect_provider": "pyflare.cost.prices",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pyflare.cost' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
