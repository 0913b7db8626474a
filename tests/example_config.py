"""The repository's example configuration, config/gateway.example.yaml, and an environment it parses with."""

from __future__ import annotations

from pathlib import Path

EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "config" / "gateway.example.yaml"
EXAMPLE_ENV = {
    name: f"example-{name.lower().replace('_', '-')}-0123456789"
    for name in (
        "UNIBO_API_KEY",
        "ENABLE3_API_KEY",
        "USERWISE_API_KEY",
        "USERWISE_SECRET_KEY",
        "INTARGET_FEED_PASSWORD",
    )
}
"""The example's secrets set to real-looking values: its `change-me` placeholders are refused, as they should be."""
