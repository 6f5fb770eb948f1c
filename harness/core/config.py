"""Reading TOML tables with errors that name the file and the dotted key.

A `Table` wraps one TOML table; `take` reads a key with its type and allowed values, and `finish`
rejects keys nobody read (a typo in a config must not be silently ignored).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import tomllib

from harness.core.errors import ConfigError, suggest, unknown_name

_MISSING = object()
# Numbers read without a maximum of their own stay below these (seconds, rates, sizes, counts).
FLOAT_MAX = 1e6
INT_MAX = 2**31 - 1


def load_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at offset "
                          f"{exc.start}); TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def named_file(name_or_path: str, files: dict[str, Path], kind: str, where: str) -> Path:
    """A config file given by path (anything ending in .toml) or by its name among `files`."""
    if name_or_path.endswith(".toml"):
        return Path(name_or_path)
    if name_or_path not in files:
        raise unknown_name(kind, name_or_path, files, where)
    return files[name_or_path]


def stems(directory: Path) -> dict[str, Path]:
    """name -> file for every *.toml directly in `directory`."""
    return {p.stem: p for p in sorted(directory.glob("*.toml"))}


class Table:
    def __init__(self, data: Any, path: Path | str, prefix: str = ""):
        self.path = str(path)
        self.prefix = prefix
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path}: [{prefix or 'top level'}] must be a table")
        self.data = data
        self._read: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.path}: key '{self.prefix + '.' if self.prefix else ''}{key}'"

    def has(self, key: str) -> bool:
        return key in self.data

    def take(self, key: str, kind: type | tuple = str, default: Any = _MISSING,
             choices: Iterable | None = None, minimum: float | None = None,
             maximum: float | None = None) -> Any:
        self._read.add(key)
        if key not in self.data:
            if default is _MISSING:
                raise ConfigError(f"{self.where(key)} is required")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(f"{self.where(key)} = {value!r}: expected {names}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{self.where(key)} = {value!r}: expected a finite number"
                              f"{_range(minimum, maximum)}")
        if choices is not None:
            choices = list(choices)
            if value not in choices:
                raise ConfigError(
                    f"{self.where(key)} = {value!r}{suggest(value, map(str, choices))}; "
                    f"accepted: {', '.join(map(str, choices))}")
        if maximum is None and not isinstance(value, bool) and isinstance(value, (int, float)):
            # a number past these is a typo, and overflows a clock, a sleep or an optimizer later
            maximum = FLOAT_MAX if isinstance(value, float) else INT_MAX
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ConfigError(f"{self.where(key)} = {value!r}: accepted: values{_range(minimum, maximum)}")
        return value

    def table(self, key: str, required: bool = False) -> Table:
        self._read.add(key)
        if key not in self.data and not required:
            return Table({}, self.path, self._child(key))
        if key not in self.data:
            raise ConfigError(f"{self.where(key)}: table [{self._child(key)}] is required")
        return Table(self.data[key], self.path, self._child(key))

    def tables(self, key: str) -> list[Table]:
        """An array of tables ([[key]])."""
        self._read.add(key)
        items = self.data.get(key, [])
        if not isinstance(items, list):
            raise ConfigError(f"{self.where(key)}: expected an array of tables [[{self._child(key)}]]")
        return [Table(item, self.path, f"{self._child(key)}[{i}]") for i, item in enumerate(items)]

    def rest(self) -> dict:
        """Every key not read yet, as a plain dict (for free-form parameter tables)."""
        out = {k: v for k, v in self.data.items() if k not in self._read}
        self._read.update(out)
        return out

    def finish(self) -> None:
        unknown = [k for k in self.data if k not in self._read]
        if unknown:
            key = unknown[0]
            raise ConfigError(
                f"{self.where(key)} is not a known key{suggest(key, self._read)}; "
                f"known: {', '.join(sorted(self._read))}")

    def _child(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key


def _range(minimum: float | None, maximum: float | None) -> str:
    """' >= 1', ' <= 10', ' >= 1 and <= 10', or ''."""
    parts = [f"{op} {bound}" for op, bound in ((">=", minimum), ("<=", maximum)) if bound is not None]
    return (" " + " and ".join(parts)) if parts else ""
