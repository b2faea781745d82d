"""Reading the user's prices from YAML (the spec's ModelPricing entries).

```yaml
prices:
  - model_id: gpt-4o
    provider: openai
    input_cost_per_million_tokens: 2500000     # micro-dollars: $2.50
    output_cost_per_million_tokens: 10000000
    cached_input_cost_per_million_tokens: 1250000   # optional
    request_cost_micros: 0                          # optional, per call
    effective_from: 2026-11-01                      # optional; UTC date or ISO 8601 time
aliases:
  my-azure-deployment: gpt-4o
catalogue: true        # false: price only the models listed here
```

Every mistake is a :class:`~pyflare.errors.ConfigError` naming the file, the entry
and the field, raised before any price is used.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyflare.errors import ConfigError

if TYPE_CHECKING:
    from pyflare.cost.prices import ModelPrice

__all__ = ["read_price_file"]

_REQUIRED = ("model_id", "input_cost_per_million_tokens", "output_cost_per_million_tokens")
_OPTIONAL = (
    "provider",
    "cached_input_cost_per_million_tokens",
    "request_cost_micros",
    "effective_from",
)
_TOP_LEVEL = ("prices", "aliases", "catalogue")


def _micros(where: str, field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        hint = ""
        if isinstance(value, float):
            hint = (
                f" ({value} looks like dollars: write {round(value * 1_000_000)} for "
                f"${value} per million tokens)"
            )
        raise ConfigError(
            f"{where}: {field} must be a whole number of micro-dollars, got {value!r}{hint}"
        )
    if value < 0:
        raise ConfigError(f"{where}: {field} must not be negative, got {value}")
    return value


def _effective_from_ns(where: str, value: Any) -> int:
    if value is None:
        return 0
    moment: datetime
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError(
                f"{where}: effective_from must be a date (2026-11-01) or an ISO 8601 time, "
                f"got {value!r}"
            ) from None
    else:
        raise ConfigError(
            f"{where}: effective_from must be a date or an ISO 8601 time, got {value!r}"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = moment.timestamp()
    if seconds < 0:
        raise ConfigError(f"{where}: effective_from must be after 1970, got {value!r}")
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _price(where: str, entry: Any) -> ModelPrice:
    from pyflare.cost.prices import ModelPrice

    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a mapping of fields, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {unknown}; known fields: {sorted(_REQUIRED + _OPTIONAL)}"
        )
    missing = [name for name in _REQUIRED if entry.get(name) is None]
    if missing:
        raise ConfigError(f"{where}: missing required field(s) {missing}")
    model_id = entry["model_id"]
    if not isinstance(model_id, str) or not model_id.strip():
        raise ConfigError(f"{where}: model_id must be a non-empty string, got {model_id!r}")
    provider = entry.get("provider")
    if provider is not None and (not isinstance(provider, str) or not provider.strip()):
        raise ConfigError(f"{where}: provider must be a non-empty string, got {provider!r}")
    cached = entry.get("cached_input_cost_per_million_tokens")
    return ModelPrice(
        model_id=model_id.strip(),
        provider=provider.strip().lower() if provider else None,
        input_micros_per_mtok=_micros(
            where, "input_cost_per_million_tokens", entry["input_cost_per_million_tokens"]
        ),
        output_micros_per_mtok=_micros(
            where, "output_cost_per_million_tokens", entry["output_cost_per_million_tokens"]
        ),
        cached_input_micros_per_mtok=None
        if cached is None
        else _micros(where, "cached_input_cost_per_million_tokens", cached),
        request_micros=_micros(where, "request_cost_micros", entry.get("request_cost_micros", 0)),
        effective_from_ns=_effective_from_ns(where, entry.get("effective_from")),
        source="user",
    )


def read_price_file(path: str | Path) -> tuple[list[ModelPrice], dict[str, str], bool]:
    """(prices, aliases, use the catalogue) from a YAML price file."""
    file = Path(path)
    try:
        import yaml
    except ImportError:  # PyYAML comes with the server extra
        raise ConfigError(
            f"price file {file}: reading YAML needs PyYAML: pip install pyyaml"
        ) from None
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"price file {file}: can't be read ({exc})") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"price file {file}: not valid YAML ({exc})") from exc
    if isinstance(document, list):
        document = {"prices": document}
    if not isinstance(document, dict):
        raise ConfigError(
            f"price file {file}: expected a mapping with 'prices' (and optionally 'aliases'), "
            f"got {type(document).__name__}"
        )
    unknown = sorted(set(document) - set(_TOP_LEVEL))
    if unknown:
        raise ConfigError(f"price file {file}: unknown key(s) {unknown}; known: {list(_TOP_LEVEL)}")
    entries = document.get("prices") or []
    if not isinstance(entries, list):
        raise ConfigError(f"price file {file}: 'prices' must be a list of entries")
    prices: list[ModelPrice] = []
    seen: dict[tuple[str, str | None, int], int] = {}
    for index, entry in enumerate(entries):
        label = entry.get("model_id") if isinstance(entry, dict) else None
        where = f"price file {file}, entry {index}" + (f" ({label})" if label else "")
        price = _price(where, entry)
        key = (price.model_id.lower(), price.provider, price.effective_from_ns)
        if key in seen:
            raise ConfigError(
                f"{where}: same model, provider and effective_from as entry {seen[key]}"
            )
        seen[key] = index
        prices.append(price)
    aliases = document.get("aliases") or {}
    if not isinstance(aliases, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in aliases.items()
    ):
        raise ConfigError(f"price file {file}: 'aliases' must map names to model names")
    catalogue = document.get("catalogue", True)
    if not isinstance(catalogue, bool):
        raise ConfigError(
            f"price file {file}: 'catalogue' must be true or false, got {catalogue!r}"
        )
    return prices, dict(aliases), catalogue
