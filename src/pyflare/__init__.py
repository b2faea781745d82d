"""PyFlare: OpenTelemetry-native observability for AI/ML workloads."""

from __future__ import annotations

from pyflare._version import __version__

__all__ = ["__version__"]
