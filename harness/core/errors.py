"""User-facing errors: one line that names the file, key or value and what would be accepted."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# Control characters (a newline inside a key or a value from a user's file) written as escapes: an error
# stays one line, and a terminal is never driven by what a file contains.
_ESCAPED = {code: repr(chr(code))[1:-1] for code in (*range(32), 127)}


class EdgebenchError(Exception):
    """An error the CLI prints as one line, without a traceback, and exits non-zero."""

    exit_code = 2

    def __str__(self) -> str:
        return super().__str__().translate(_ESCAPED)


class ConfigError(EdgebenchError):
    """A configuration file, command-line value or input file is not acceptable."""


class JobError(EdgebenchError):
    """One job could not be measured; the run goes on and records the reason."""


class SkipJob(JobError):
    """A job that cannot run on this target/backend by design (recorded as skipped, not failed)."""


def suggest(value: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_name(kind: str, value: str, choices: Iterable[str], where: str = "") -> ConfigError:
    choices = sorted(choices)
    place = f"{where}: " if where else ""
    return ConfigError(
        f"{place}unknown {kind} '{value}'{suggest(value, choices)}; "
        f"known: {', '.join(choices) if choices else '(none)'}"
    )
