"""PyFlare's self-hosted server (``pip install "pyflare[server]"``)."""

from __future__ import annotations
