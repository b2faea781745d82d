"""The examples run as a user would run them."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart(run_python, tmp_path: Path) -> None:
    result = run_python.script(EXAMPLES / "quickstart.py", env={"COLUMNS": "160"}, timeout=120)
    out = result.stdout
    assert "9 traces" in out
    assert "rag-bot" in out
    assert "TimeoutError: upstream model timed out after 30 s" in out
    assert "gpt-4o-mini" in out
    assert "fraud-v3" in out
    assert "exported 21 spans, dropped 0" in out
    assert "jane.doe@example.com" not in out
    assert (tmp_path / ".pyflare" / "pyflare.duckdb").is_file()
    assert result.stderr == ""
