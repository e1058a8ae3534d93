"""The monitor: probes (registry.py, one module per type), the loop that runs them
(loop.py), the pure rule (state.py).

The names below are re-exported lazily: config.py imports `xprov.monitor.registry`, which
must not load the loop (it imports the config) while the config is being loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xprov.monitor.loop import ManualChoiceError, Monitor, Target, build_targets, probe_pool

__all__ = ["ManualChoiceError", "Monitor", "Target", "build_targets", "probe_pool"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("xprov.monitor.loop"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
