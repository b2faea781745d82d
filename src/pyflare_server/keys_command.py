"""``pyflare keys``: create, list and revoke the API keys of PyFlare's server.

Keys live (hashed) in the server's store, ``server.store`` of the same
settings as ``pyflare server`` (``--config``, ``--store``, ``PYFLARE_*``). A
DuckDB store is a file one process owns: manage keys while the server is
stopped (with ClickHouse they can be managed any time; a running server sees
a change within seconds). ``create`` prints the key alone on stdout, once: it
is never stored, so it cannot be shown again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from typing import Any

from pyflare.errors import InvalidArgumentError, StoreError, StoreLockedError
from pyflare.store.base import SpanStore
from pyflare_server.auth.keys import create_key, parse_duration
from pyflare_server.auth.permissions import ROLES
from pyflare_server.storage.factory import open_server_store

__all__ = ["register_keys"]


def _add_store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="the server's YAML settings")
    parser.add_argument("--store", help="the server's store (default: server.store)")


def _open(args: argparse.Namespace) -> SpanStore:
    from pyflare_server.settings import ServerSettings

    overrides = {"store": args.store} if args.store is not None else {}
    settings = ServerSettings.load(args.config, overrides=overrides)
    try:
        return open_server_store(settings.server.store)
    except StoreLockedError as exc:
        raise StoreError(
            f"{exc}. A DuckDB store belongs to one process: stop `pyflare server` to "
            "manage its keys, then start it again"
        ) from exc


def _when(ns: int | None) -> str:
    if ns is None:
        return "-"
    moment = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _status(key: dict[str, Any], now_ns: int) -> str:
    if key["revoked_at_ns"] is not None:
        return "revoked"
    if key["expires_at_ns"] is not None and key["expires_at_ns"] <= now_ns:
        return "expired"
    return "active"


def _cmd_create(args: argparse.Namespace) -> int:
    expires_s = parse_duration(args.expires) if args.expires is not None else None
    if args.name is not None and not args.name.strip():
        raise InvalidArgumentError("--name must not be empty")
    if args.user_id is not None and not args.user_id.strip():
        raise InvalidArgumentError("--user-id must not be empty")
    store = _open(args)
    try:
        made = create_key(
            store, args.role, name=args.name, user_id=args.user_id, expires_in_s=expires_s
        )
    finally:
        store.close()
    sys.stdout.write(made.key + "\n")
    sys.stdout.flush()
    sys.stderr.write(
        f"API key {made.key_id} (role {args.role}"
        + (f", user {args.user_id}" if args.user_id else "")
        + f", expires {_when(made.record['expires_at_ns'])}). Keep it now: PyFlare stores "
        "only its hash and cannot show it again. Send it as X-API-Key or "
        "'Authorization: Bearer <key>'.\n"
    )
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        keys = store.api_keys(include_revoked=args.all)
    finally:
        store.close()
    now = time.time_ns()
    if args.format == "json":
        rows = [{**key, "status": _status(key, now)} for key in keys]
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return 0
    header = ("KEY_ID", "NAME", "ROLE", "USER", "CREATED", "EXPIRES", "STATUS")
    table = [header] + [
        (
            key["key_id"],
            key["name"] or "-",
            key["role"],
            key["user_id"] or "-",
            _when(key["created_at_ns"]),
            _when(key["expires_at_ns"]),
            _status(key, now),
        )
        for key in keys
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        sys.stdout.write("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
        sys.stdout.write("\n")
    if not keys:
        sys.stderr.write("no API keys yet: create one with `pyflare keys create --role admin`\n")
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        known = store.api_key(args.key_id)
        revoked = store.revoke_api_key(args.key_id, at_ns=time.time_ns())
    finally:
        store.close()
    if not revoked:
        why = "is already revoked" if known is not None else "does not exist"
        sys.stderr.write(
            f"pyflare: the API key {args.key_id} {why} (see `pyflare keys list --all`)\n"
        )
        return 1
    sys.stderr.write(f"revoked the API key {args.key_id}\n")
    return 0


def register_keys(subparsers: Any) -> None:
    """Add ``pyflare keys create|list|revoke``."""
    keys = subparsers.add_parser(
        "keys",
        help="create, list and revoke API keys of PyFlare's server",
        description="API keys for the server's API and receivers, kept hashed in its store.",
    )
    commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    create = commands.add_parser("create", help="make a key and print it (once)")
    create.add_argument("--role", required=True, choices=list(ROLES), help="what it may do")
    create.add_argument("--name", help="what the key is for")
    create.add_argument("--user-id", help="whose costs a viewer's key shows (costs:read:own)")
    create.add_argument("--expires", metavar="DURATION", help="e.g. 30d, 12h, 2w (default never)")
    _add_store_flags(create)
    create.set_defaults(handler=_cmd_create)

    listing = commands.add_parser("list", help="the keys (ids and details, never the keys)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    listing.add_argument("--format", choices=["table", "json"], default="table")
    _add_store_flags(listing)
    listing.set_defaults(handler=_cmd_list)

    revoke = commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", metavar="KEY_ID")
    _add_store_flags(revoke)
    revoke.set_defaults(handler=_cmd_revoke)
