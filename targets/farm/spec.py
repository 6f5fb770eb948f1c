"""[farm] of a target file: which boards of a labgrid coordinator a run may use, and how.

    [farm]
    engine = "labgrid"               the only engine (labgrid's coordinator, exporters and places)
    coordinator = "labhost:20408"    the coordinator's gRPC address (host:port)
    tags = { board = "rpi4" }        any place carrying these tags
    boards = 4                       places to use at once, or "all" (every matching place free at the start)
    reserve_timeout_s = 600          how long to wait for the first board before giving up
    replicate = false                true: every job on every board (board-to-board variation)
    rejoin_timeout_s = 300           how long a lost board gets to answer SSH again before it is dropped
    meter_place = "rpi4-1"           a host-side meter ([power]) is wired to this place: read for its jobs only
    power_cycle_command = "..."      a command that cycles a place's power when its exporter offers no power
                                     port ({place} is replaced by the place's name, shell-quoted)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.core.config import Table
from harness.core.errors import ConfigError

ENGINES = ("labgrid",)
DEFAULT_COORDINATOR = "127.0.0.1:20408"
# labgrid's own rule for tag keys (labgrid.remote.common.TAG_KEY), checked here without importing labgrid
TAG_KEY = re.compile(r"[a-z][a-z0-9_]+")
TAG_VALUE = re.compile(r"[A-Za-z0-9_.-]+")
ADDRESS = re.compile(r"[A-Za-z0-9_.-]+(:\d{1,5})?|\[[0-9A-Fa-f:]+\](:\d{1,5})?")
# target keys a farm takes from each place's NetworkService instead of the target file
FROM_THE_PLACE = ("host", "port", "user")


@dataclass(frozen=True)
class FarmSpec:
    coordinator: str
    tags: dict = field(default_factory=dict)
    boards: int | None = None          # None: "all"
    reserve_timeout_s: float = 600.0
    replicate: bool = False
    rejoin_timeout_s: float = 300.0
    meter_place: str | None = None
    power_cycle_command: str | None = None
    engine: str = "labgrid"

    def describe(self) -> str:
        tags = ", ".join(f"{k}={v}" for k, v in sorted(self.tags.items())) or "any place"
        return f"{tags} at {self.coordinator}"


def parse_farm(table: Table) -> FarmSpec | None:
    """[farm] read and checked (one ConfigError line naming the file and key); None without the table."""
    if not table.data:
        return None
    engine = table.take("engine", str, "labgrid", choices=ENGINES)
    coordinator = table.take("coordinator", str, DEFAULT_COORDINATOR)
    if not ADDRESS.fullmatch(coordinator):
        raise ConfigError(f"{table.where('coordinator')} = {coordinator!r}: accepted: host:port of a "
                          f"labgrid-coordinator, e.g. \"labhost:20408\"")
    tags = table.take("tags", dict, {})
    for key, value in tags.items():
        if not TAG_KEY.fullmatch(key) or not isinstance(value, str) or not TAG_VALUE.fullmatch(value):
            raise ConfigError(f"{table.where('tags')}: {key} = {value!r}; accepted: keys of lower-case letters, "
                              f"digits and _ (two or more, as labgrid's set-tags takes them), string values of "
                              f"letters, digits and . _ -")
    boards = table.take("boards", (int, str), "all")
    if isinstance(boards, str) and boards != "all" or isinstance(boards, int) and not 1 <= boards <= 1024:
        raise ConfigError(f"{table.where('boards')} = {boards!r}: accepted: a number of places from 1 to 1024, "
                          f"or \"all\"")
    spec = FarmSpec(
        coordinator=coordinator, tags=dict(tags), boards=None if boards == "all" else boards,
        reserve_timeout_s=table.take("reserve_timeout_s", float, 600.0, minimum=0.0),
        replicate=table.take("replicate", bool, False),
        rejoin_timeout_s=table.take("rejoin_timeout_s", float, 300.0, minimum=0.0),
        meter_place=table.take("meter_place", str, None),
        power_cycle_command=table.take("power_cycle_command", str, None),
        engine=engine)
    if spec.power_cycle_command is not None and not spec.power_cycle_command.strip():
        raise ConfigError(f"{table.where('power_cycle_command')}: empty; accepted: a command (its words split "
                          f"as a shell would, no shell run), {{place}} standing for the place's name")
    table.finish()
    return spec


def check_board_keys(settings: dict, where: str) -> None:
    """A farm's boards are where their places say: [target] must not name one."""
    named = [k for k in FROM_THE_PLACE if k in settings]
    if named:
        raise ConfigError(f"{where}: key 'target.{named[0]}': a farm target takes host, port and user from each "
                          f"place's NetworkService (the exporter's YAML); remove {', '.join(named)} from [target]")
