"""The result schema is defined once and everything derives from it; runs of older formats are read
(report, compare, resume) through a migration, newer ones refused by name."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from helpers import FIXTURES, PROJECT_ROOT

from harness.core import migrations, schema
from harness.core.errors import ConfigError
from harness.core.jobs import KEY_COLUMNS
from harness.core.rundir import RunStore
from harness.core.schema import COLUMNS, RESULT_FORMAT_VERSION

ROOT = PROJECT_ROOT
# A real run written by commit 39f6013 (format 1): tiny-digits fp32 and int8 on onnxruntime (ok) and on
# litert (skipped); see tests/fixtures/runs/README.txt
FORMAT_1 = FIXTURES / "runs" / "format-1"
# The header of the current format; changing COLUMNS changes it
FORMAT_COLUMNS_SHA256 = {2: "cb05e5495b7bc0b7", 3: "ac24a919aa6025d3", 4: "130ae9615ab2f9b7", 5: "818971f4ca6623e9",
                         6: "29daca18b5b68b94"}


@pytest.fixture
def old_run(tmp_path) -> Path:
    """A copy of the format-1 fixture, free to be migrated."""
    return Path(shutil.copytree(FORMAT_1, tmp_path / "runs" / "20261123-105229-cpu-tiny"))


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def csv_header(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return next(csv.reader(fh))


# ---- one definition, everything derived ----

def test_the_store_writes_the_schema_header_and_format_version(tmp_path):
    info = {"run_id": "r", "config_hash": "h", "request": {"suite": "s"}}
    store = RunStore.create(tmp_path, "r", info)
    assert csv_header(store.results_csv) == COLUMNS
    assert store.run_info() == {"format_version": RESULT_FORMAT_VERSION, **info}
    assert RunStore.open(store.dir).migration_note is None


def test_changing_the_columns_needs_a_new_format_version():
    digest = hashlib.sha256(",".join(COLUMNS).encode()).hexdigest()[:16]
    assert FORMAT_COLUMNS_SHA256.get(RESULT_FORMAT_VERSION) == digest, (
        "results.csv's columns changed: bump RESULT_FORMAT_VERSION in harness/core/schema.py, freeze the "
        "old column list in harness/core/migrations.py FORMAT_COLUMNS, add a step to STEPS, and record "
        f"the new header's digest here: {RESULT_FORMAT_VERSION + 1}: {digest!r}")


def test_key_columns_are_the_jobs_and_kinds_are_known():
    assert schema.KEY == list(KEY_COLUMNS) and set(KEY_COLUMNS) <= set(COLUMNS)
    assert {c.kind for c in schema.COLUMN_DEFS} <= set(schema.KINDS)
    assert len(set(COLUMNS)) == len(COLUMNS)


def test_reports_take_types_and_table_from_the_schema(old_run):
    import reports.load
    from reports.load import load_run
    from reports.render import table_cells

    assert reports.load.NUMERIC is schema.NUMERIC
    assert schema.NUMERIC == [c.name for c in schema.COLUMN_DEFS if c.kind in ("int", "float")]
    assert schema.REPORT_COLUMNS == [(c, schema.BY_NAME[c].header, schema.BY_NAME[c].fmt)
                                     for c in schema.REPORT_ORDER]
    assert schema.REPORT_WHEN_PRESENT == {"h2d_ms", "d2h_ms", "link", "board", "other_cpu_cores", "exit_rate",
                                          "expected_macs", "exit_path", "exit_skip_rate", "stopping_rule",
                                          "latency_p50_ci_pct",
                                          "energy_per_inference_mj", "energy_per_inference_above_idle_mj",
                                          "avg_power_w"}
    _, rows = load_run(old_run)
    assert list(rows.columns) == COLUMNS
    headers, _ = table_cells(rows)  # the report's table: the schema's headers, GPU copies absent here
    assert headers == [h for c, h, _ in schema.REPORT_COLUMNS if c not in schema.REPORT_WHEN_PRESENT]
    for column in schema.NUMERIC:
        assert rows[column].dtype.kind in "if", column
    # ok rows are False (1 s windows), skipped rows have no value
    assert rows["valid"].tolist()[0::2] == [False, False] and rows["valid"][1::2].isna().all()


def test_readme_column_table_is_the_schemas():
    readme = (ROOT / "README.md").read_text()
    assert schema.readme_section(readme) == schema.markdown_table(), (
        f"README.md's results.csv column table differs from harness/core/schema.py; regenerate it with: "
        f"{schema.REGENERATE}")
    assert schema.with_readme_section(readme) == readme


def test_readme_update_replaces_only_the_table(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{schema.README_START}\n| stale |\n{schema.README_END}\n\nafter\n")
    assert schema.main(["--update-readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\n") and text.endswith(f"{schema.README_END}\n\nafter\n")
    assert schema.readme_section(text) == schema.markdown_table() and "| stale |" not in text
    with pytest.raises(ValueError, match="no column table"):
        schema.readme_section("# no markers\n")


# ---- runs of format 1 (commit 39f6013) ----

def test_the_fixture_is_format_1():
    info = json.loads((FORMAT_1 / "run.json").read_text())
    assert "format_version" not in info and "protocol" in info
    assert csv_header(FORMAT_1 / "results.csv") == migrations.FORMAT_1_COLUMNS


def test_a_format_1_run_is_reported_without_being_changed(old_run):
    from reports.report import write_report

    before = {p.name: p.read_bytes() for p in old_run.iterdir() if p.is_file()}
    html, md = write_report(old_run)
    text = md.read_text()
    assert "| tiny-digits | fp32 | onnxruntime | fp32 | 1 | 1 | 0.9722 | +0.0000 |" in text
    assert "| tiny-digits | int8 | onnxruntime | int8 | 1 | 1 | 0.9750 | +0.0028 |" in text
    assert "litert runs .tflite files" in text  # the skipped rows
    assert "2 timed windows of >= 0.05 s" in text  # the measurement protocol, read under its new name
    assert "tiny-digits" in html.read_text()
    # read through an in-memory migration: the run directory is as it was, reports aside
    after = {p.name: p.read_bytes() for p in old_run.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if not k.startswith("report.")} == before

    data = migrations.read_run(old_run)
    assert data.from_version == 1 and data.info["format_version"] == RESULT_FORMAT_VERSION
    assert "protocol" not in data.info and data.info["measurement_protocol"]["n_windows"] == 2


def test_a_format_1_run_compares_with_its_migrated_copy(old_run, tmp_path):
    from reports.compare import compare_runs, write_comparison

    migrated = Path(shutil.copytree(old_run, tmp_path / "runs" / "migrated"))
    assert RunStore.open(migrated).migration_note
    table, only_a, only_b = compare_runs(old_run, migrated)
    assert len(table) == 2 and only_a == only_b == []
    assert set(table["variant"]) == {"fp32", "int8"}
    assert (table["p50_ratio"] == 1.0).all() and not table["regression"].any()
    (_, md), n_regressions = write_comparison(old_run, migrated, tmp_path / "out")
    assert n_regressions == 0 and "2 jobs in both runs" in md.read_text()


def current_format(row: dict) -> dict:
    """A format-1 row as the current format holds it: the same values, the columns added since empty, (format
    3) the job run whole on the device, and (format 4) its accuracy the top-1 one."""
    return {**{c: row.get(c, "") for c in COLUMNS}, "strategy": "local",
            "metric": "top1" if row.get("accuracy") else ""}


def test_resume_migrates_a_format_1_run_in_place_keeping_the_originals(old_run):
    original_csv = (old_run / "results.csv").read_bytes()
    original_json = json.loads((old_run / "run.json").read_text())
    original_rows = csv_rows(old_run / "results.csv")

    store = RunStore.open(old_run)
    assert store.migration_note == (
        f"{old_run}: result format 1 migrated to format {RESULT_FORMAT_VERSION} in place; originals kept "
        f"as results.v1.csv and run.v1.json")
    assert (old_run / "results.v1.csv").read_bytes() == original_csv
    assert json.loads((old_run / "run.v1.json").read_text()) == original_json

    info = store.run_info()
    assert info["format_version"] == RESULT_FORMAT_VERSION and "protocol" not in info
    assert info["measurement_protocol"] == original_json["protocol"]
    assert info["migrations"][0]["from_format"] == 1
    assert info["migrations"][0]["originals"] == ["results.v1.csv", "run.v1.json"]
    assert {k: v for k, v in info.items()
            if k not in ("format_version", "measurement_protocol", "migrations")} == {
        k: v for k, v in original_json.items() if k != "protocol"}

    assert csv_header(store.results_csv) == COLUMNS
    assert store.rows() == [current_format(r) for r in original_rows]  # every value kept
    assert store.finished_job_ids() == {r["job_id"] for r in original_rows} == {
        "tiny-digits__fp32__onnxruntime__t1__b1", "tiny-digits__int8__onnxruntime__t1__b1",
        "tiny-digits__fp32__litert__t1__b1", "tiny-digits__int8__litert__t1__b1"}

    # migrated once: opening again changes nothing, and the resumed run appends current rows
    assert RunStore.open(old_run).migration_note is None
    store.append({"run_id": "r", "job_id": "tiny-digits__fp32__torch__t1__b1", "status": "failed"})
    assert len(RunStore.open(old_run).rows()) == 5
    assert (old_run / "results.v1.csv").read_bytes() == original_csv


def test_a_partial_row_in_a_format_1_run_is_dropped_but_kept_in_the_original(old_run):
    with open(old_run / "results.csv", "a") as fh:
        fh.write("partial,row,without,newline")
    kept = (old_run / "results.csv").read_bytes()
    store = RunStore.open(old_run)
    assert len(store.rows()) == 4 and (old_run / "results.v1.csv").read_bytes() == kept


def test_a_migration_stopped_half_way_is_finished_from_the_originals(old_run):
    original_rows = csv_rows(old_run / "results.csv")
    RunStore.open(old_run)
    # as if it stopped after rewriting results.csv, before run.json said the new format
    shutil.copy(old_run / "run.v1.json", old_run / "run.json")
    (old_run / "results.csv").write_text(",".join(COLUMNS) + "\r\n")
    store = RunStore.open(old_run)
    assert store.migration_note and store.rows() == [current_format(r) for r in original_rows]


def test_older_headers_get_empty_new_columns_and_lose_removed_ones(old_run, monkeypatch):
    header, rows = migrations.read_results(old_run / "results.csv")
    # a run from before h2d_ms/d2h_ms existed (earlier format-1 commits wrote fewer columns)
    older = [c for c in header if c not in ("h2d_ms", "d2h_ms")]
    data = migrations.migrate({}, older, [{c: r[c] for c in older} for r in rows], old_run)
    assert all(r["h2d_ms"] == r["d2h_ms"] == "" for r in data.rows) and list(data.rows[0]) == COLUMNS
    # a column the current format no longer writes is dropped (its values stay in the kept original)
    monkeypatch.setattr(migrations, "COLUMNS", [c for c in COLUMNS if c != "warnings"])
    data = migrations.migrate({}, header, rows, old_run)
    assert "warnings" not in data.rows[0] and "dropped: warnings" in data.notes[0]


def test_a_header_no_format_wrote_is_refused_before_anything_is_written(old_run):
    text = (old_run / "results.csv").read_text().replace("finished_at", "finished_when", 1)
    (old_run / "results.csv").write_text(text)
    with pytest.raises(ConfigError, match=r"results.csv: written by an edgebench with other result "
                                          r"columns.*unknown: finished_when"):
        RunStore.open(old_run)
    assert not (old_run / "results.v1.csv").exists()


def test_a_run_of_a_newer_format_is_refused_by_name(old_run):
    from reports.load import load_run

    info = json.loads((old_run / "run.json").read_text())
    (old_run / "run.json").write_text(json.dumps({**info, "format_version": RESULT_FORMAT_VERSION + 1}))
    for read in (RunStore.open, load_run):
        with pytest.raises(ConfigError) as exc:
            read(old_run)
        message = str(exc.value)
        assert str(old_run / "run.json") in message
        assert f"result format {RESULT_FORMAT_VERSION + 1}" in message
        assert f"format {RESULT_FORMAT_VERSION})" in message
    assert sorted(p.name for p in old_run.iterdir()) == ["raw", "results.csv", "run.json"]


def test_a_format_version_that_is_no_version_is_refused(old_run):
    (old_run / "run.json").write_text(json.dumps({"format_version": "2"}))
    with pytest.raises(ConfigError, match=r"run.json: format_version = '2'; accepted: an integer from 1"):
        RunStore.open(old_run)
