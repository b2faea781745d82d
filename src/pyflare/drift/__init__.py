"""Drift detection: statistical tests, embedding drift, concept drift on streams, windowed detectors."""
