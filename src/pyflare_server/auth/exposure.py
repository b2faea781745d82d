"""When auth is on, and the rule that keeps an exposed server from running without it.

``server.auth.enabled`` unset (the default) means: on, unless every listener
(OTLP/HTTP, OTLP/gRPC, the API) binds a loopback address (127.0.0.0/8, ::1,
``localhost``), where only programs on this machine can connect: that is the
local mode, which runs without keys. A server with auth turned off that binds
any other address (``0.0.0.0`` included) refuses to start unless it is told
``--insecure`` (or ``server.auth.insecure: true``), for a network that is
protected some other way.
"""

from __future__ import annotations

import ipaddress

from pyflare.errors import ConfigError
from pyflare_server.settings import ServerSettings

__all__ = ["auth_enabled", "check_exposure", "exposed_hosts", "is_loopback", "with_insecure"]


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name that may resolve to anything


def exposed_hosts(settings: ServerSettings) -> list[str]:
    """The listener hosts other machines may reach, in a stable order."""
    hosts = (settings.otlp_http_host, settings.otlp_grpc_host, settings.api_host)
    return sorted({host for host in hosts if not is_loopback(host)})


def auth_enabled(settings: ServerSettings) -> bool:
    """``server.auth.enabled``, or when unset: whether some listener is exposed."""
    enabled = settings.server.auth.enabled
    return enabled if enabled is not None else bool(exposed_hosts(settings))


def check_exposure(settings: ServerSettings, *, insecure: bool = False) -> None:
    """Refuse (ConfigError) to serve an exposed address without auth unless told insecure."""
    exposed = exposed_hosts(settings)
    if auth_enabled(settings) or not exposed or insecure or settings.server.auth.insecure:
        return
    raise ConfigError(
        f"refusing to listen on {', '.join(exposed)} with auth off (server.auth.enabled: "
        "false): anyone who can reach this machine could read and write everything. "
        "Turn auth on (create a key with `pyflare keys create --role admin`), bind "
        "127.0.0.1 (--host 127.0.0.1), or pass --insecure if the network is protected "
        "some other way"
    )


def with_insecure(settings: ServerSettings) -> ServerSettings:
    """``settings`` with ``server.auth.insecure`` set (the ``--insecure`` flag)."""
    auth = settings.server.auth.model_copy(update={"insecure": True})
    server = settings.server.model_copy(update={"auth": auth})
    return settings.model_copy(update={"server": server})
