"""Silencing converters that print progress and import-time notes straight to file descriptors 1 and 2
(litert-torch, torchao, brevitas' exporter), which would tear through the progress display. What they
printed is kept and shown when they fail."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

TAIL_CHARS = 2000


class ConverterError(RuntimeError):
    pass


@contextlib.contextmanager
def native_output_captured(what: str):
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
        except Exception as exc:
            sink.seek(0)
            tail = sink.read().decode(errors="replace")[-TAIL_CHARS:]
            raise ConverterError(f"{what} failed: {type(exc).__name__}: {exc}\n--- its output (tail) ---\n"
                                 f"{tail}") from exc
        finally:
            for fd in saved:
                os.close(fd)


def import_converter(module: str, where, needs: str, extra: str):
    """`module`, imported with its native output captured; when it is not installed, one line: `where`,
    what `needs` it, and the extra that installs it."""
    import importlib

    from harness.core.errors import ConfigError

    try:
        with native_output_captured(f"importing {module}"):
            return importlib.import_module(module)
    except ConverterError as exc:
        if not isinstance(exc.__cause__, ImportError):
            raise
        raise ConfigError(f"{where}: {needs}; install the extra: pip install -e '.[{extra}]'") from None
