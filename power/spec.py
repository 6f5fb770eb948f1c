"""A resolved power source (board-side too: Python 3.8 syntax, the standard library and numpy).

The host resolves a [power] table or `--power` once (power.registry.power_spec): the spec carries the
source's import reference, so a board-side agent (no package metadata there) creates the source with
`make_source` all the same, without the host-side registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.core.errors import ConfigError
from harness.core.plugins import load_ref
from power.energy import MIN_SAMPLES_PER_WINDOW
from power.source import PowerSource


@dataclass(frozen=True)
class PowerSpec:
    source: str = "none"
    options: dict = field(default_factory=dict)
    idle_s: float = 5.0
    min_samples: int = MIN_SAMPLES_PER_WINDOW
    strict: bool = False
    where: str = ""
    source_ref: str = ""     # "module:Class" of the source, resolved on the host (the agent imports it)
    on_device: bool = False  # the source reads the device itself: on a board it runs inside the agent


def make_source(spec: PowerSpec) -> PowerSource:
    """The source named by the spec's import reference (works inside a board's agent: no entry points)."""
    if not spec.source_ref:
        raise ConfigError(f"{spec.where}: power source '{spec.source}' has no import reference: a spec is "
                          f"resolved on the host by power.registry.power_spec")
    try:
        cls = load_ref(spec.source_ref)
    except Exception as exc:
        raise ConfigError(f"{spec.where}: power source '{spec.source}' ({spec.source_ref}) failed to "
                          f"import here: {type(exc).__name__}: {exc}") from None
    source = cls.from_options(dict(spec.options))
    source.name = source.name or spec.source
    if source.emulated and not source.name.startswith("emulated"):
        source.name = "emulated-" + source.name  # results and reports tell emulation by this prefix
    return source
