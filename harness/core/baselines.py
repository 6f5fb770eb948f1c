"""The fp32 baseline each variant's accuracy delta is measured against, from a run's own rows.

The plan puts each workload's baseline jobs first (harness.core.jobs.expand), so while a run goes every
variant's reference is already in memory. Where it was not (the baseline failed and a --resume measured
it after the variants), the row is written without a delta and reading the run fills it in from the same
rows (reports.load), so the delta never depends on the order jobs ran in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class BaselineAccuracies:
    """The ok baseline rows of one run, kept in memory (no re-read of results.csv per job)."""

    def __init__(self, rows: Iterable[Mapping] = ()):
        self._rows = []
        for row in rows:
            self.add(row)

    def add(self, row: Mapping) -> None:
        # a baseline without a metric has no accuracy to compare with
        if row["status"] == "ok" and row["family"] == "baseline" and row.get("accuracy") not in (None, ""):
            self._rows.append(dict(row))

    def reference(self, key: Mapping) -> float | None:
        """The baseline's accuracy for `key`'s workload and target (a row or a job as a dict): on the same
        backend with the same settings first, else on another backend (a .tflite variant's baseline is the
        ONNX model it was converted from, which LiteRT cannot run)."""
        candidates = [r for r in self._rows if r["workload"] == key["workload"] and r["target"] == key["target"]]
        candidates.sort(key=lambda r: (r["backend"] != key["backend"], str(r["threads"]) != str(key["threads"]),
                                       str(r["batch_size"]) != str(key["batch_size"])))
        return float(candidates[0]["accuracy"]) if candidates else None
