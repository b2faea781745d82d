"""Test helpers for code instrumented with PyFlare (also a pytest plugin)."""

from __future__ import annotations
