"""Qdrant's local mode (qdrant-client without a server): what PyFlare works around."""

from __future__ import annotations

import sys
from pathlib import Path

from pyflare.errors import StoreError
from pyflare_server.storage.urls import QdrantLocalURL

__all__ = ["check_not_in_use"]


def check_not_in_use(url: QdrantLocalURL) -> None:
    """Refuse a local directory another client holds, before qdrant-client opens it.

    qdrant-client takes an exclusive ``flock`` on ``<path>/.lock`` and, when that
    fails, raises with the lock file left open; trying the same lock first avoids that.
    """
    lock_path = Path(url.path) / ".lock"
    if sys.platform == "win32" or not lock_path.is_file():
        return
    import fcntl

    with lock_path.open("rb") as lock_file:
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StoreError(
                f"cannot open the Qdrant vector store {url}: the directory is already accessed "
                "by another client (in this process or another); local mode allows one at a "
                "time, a Qdrant server any number"
            ) from None
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
