"""The `edgebench` command line (also `python -m harness`)."""

from __future__ import annotations

import argparse
import math
import sys
import threading
from pathlib import Path

from rich.console import Console

from harness.core.errors import ConfigError, EdgebenchError
from harness.core.model_io import METRICS


def _bench(args) -> int:
    from harness.app.progress import make_reporter, summary_table
    from harness.app.runner import Bench

    if args.resume:
        given = [flag for flag, value in (("--target", args.target), ("--suite", args.suite),
                                          ("--workload", args.workload), ("--model", args.model),
                                          ("--data", args.data), ("--output", args.output),
                                          ("--metric", args.metric), ("--threshold", args.threshold),
                                          ("--calibration", args.calibration), ("--backend", args.backend),
                                          ("--threads", args.threads), ("--batch-size", args.batch_size),
                                          ("--power", args.power), ("--link", args.link),
                                          ("--server-address", args.server_address),
                                          ("--stopping", args.stopping)) if value is not None
                 and value != []]
        if given:
            raise ConfigError(f"--resume {args.resume} with {', '.join(given)}: a resumed run asks what it "
                              f"asked when it started; start a new run to change it")
    if args.dry_run:
        return _dry_run(args)
    reporter = make_reporter(args.quiet)
    with reporter:
        bench = Bench(reporter)
        if args.resume:
            store = bench.resume(Path(args.resume))
        else:
            store = bench.start(_request(args), Path(args.runs_dir))
    # a job retried by --resume has several rows: its last one is its result
    rows = list({r["job_id"]: r for r in store.rows()}.values())
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(summary_table(rows))
    if not args.no_report:
        from reports.report import write_report

        paths = write_report(store.dir)
        console.print(f"report: {paths[0]}  {paths[1]}")
    console.print(f"results: {store.results_csv}")
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        skipped = sum(r["status"] == "skipped" for r in rows)
        print(f"edgebench: {len(failed)} of {len(rows)} jobs failed ({skipped} skipped); first: "
              f"{failed[0]['job_id']}: {failed[0].get('reason', '')}; fix and resume with: "
              f"edgebench bench --resume {store.dir}", file=sys.stderr)
        return 1
    if rows and not any(r["status"] == "ok" for r in rows):
        print(f"edgebench: no job of {len(rows)} measured anything (all skipped); first: {rows[0]['job_id']}: "
              f"{rows[0].get('reason', '')}", file=sys.stderr)
        return 1
    return 0


def _request(args):
    from harness.app.runner import BenchRequest

    return BenchRequest(target=_absolute(args.target) or "cpu", suite=_absolute(args.suite) or "quick",
                        workloads=[_absolute(w) for w in args.workload or []],
                        model=_absolute(args.model), data=_absolute(args.data),
                        output=args.output, metric=args.metric, threshold=args.threshold,
                        calibration=_absolute(args.calibration),
                        backends=args.backend or [],
                        threads=args.threads or [], batch_sizes=args.batch_size or [],
                        power=args.power, link=args.link, server_address=args.server_address,
                        stopping=args.stopping)


def _dry_run(args) -> int:
    """The plan and its time estimate; nothing built or measured, no run directory or cache entry written.
    With --resume the run is opened and checked as --resume opens and checks it (RunStore.open, then the
    configuration's hash), so a run --resume would refuse is refused here with the same error; the estimate
    learns from the runs beside it (its parent directory, where --resume's own run goes)."""
    from harness.app.plan import dry_run_text
    from harness.app.runner import BenchRequest, resolve

    if not args.resume:
        print(dry_run_text(resolve(_request(args)), Path(args.runs_dir)))
        return 0
    from harness.app.resume_check import check_unchanged
    from harness.core.rundir import RunStore

    with RunStore.open(Path(args.resume)) as store:
        info = store.run_info()
        run = resolve(BenchRequest(**info["request"]))
        check_unchanged(Path(args.resume), run, info["config_hash"])
        notes = [note for note in [store.migration_note, *store.notes] if note]
        print(dry_run_text(run, store.dir.parent, store.finished_job_ids(), notes))
    return 0


def _splits(args) -> int:
    from workloads.split_analysis import describe_splits

    if bool(args.model) == bool(args.workload):
        raise ConfigError("edgebench splits: give --model M.onnx or --workload W (one of them)")
    if args.model:
        path = Path(args.model)
        shape = _model_sample_shape(path, args.input_shape)
    else:
        from workloads.build import build_base
        from workloads.spec import find_workload

        base = build_base(find_workload(args.workload, "--workload"), lambda msg: print(msg, file=sys.stderr))
        path, shape = base.onnx_path, tuple(base.data.input_shape)
    print(describe_splits(path, shape))
    return 0


def _model_sample_shape(path: Path, given: str | None) -> tuple[int, ...]:
    """One sample's shape: --input-shape, else the model's first input without its batch axis."""
    from workloads.signatures import onnx_signature
    from workloads.user_models import load_user_onnx

    model = load_user_onnx(path, "--model")  # a missing or corrupt file is one line, shape given or not
    if given:
        try:
            shape = tuple(int(d) for d in given.split(","))
        except ValueError:
            shape = ()
        if not shape or min(shape) < 1:
            raise ConfigError(f"--input-shape {given}: accepted: positive integers separated by commas, one "
                              f"sample without the batch axis (e.g. 1,28,28)")
        return shape
    sample = onnx_signature(model).inputs[0].shape[1:]
    if not all(isinstance(d, int) and d > 0 for d in sample):
        raise ConfigError(f"{path}: the first input's shape {list(sample)} has symbolic dimensions after the "
                          f"batch axis; give one sample's shape with --input-shape (e.g. 3,224,224)")
    return tuple(sample)


def _report(args) -> int:
    if not (math.isfinite(args.budget_points) and args.budget_points >= 0):
        raise ConfigError(f"--budget-points {args.budget_points}: accepted: accuracy points >= 0 (e.g. 1)")
    if len(args.runs) == 1 and not args.out:
        from reports.report import write_report

        paths = write_report(Path(args.runs[0]))
    else:
        from reports.cross_report import write_cross_report

        paths = write_cross_report([Path(r) for r in args.runs], Path(args.out) if args.out else None,
                                   budget_points=args.budget_points)
    for path in paths:
        print(path)
    return 0


def _runs(args) -> int:
    from reports.runs_index import print_runs

    print_runs(Path(args.dir))
    return 0


def _check_significance(args) -> None:
    if not (math.isfinite(args.threshold) and args.threshold >= 1.0):
        raise ConfigError(f"--threshold {args.threshold}: accepted: a ratio >= 1 (e.g. 1.10)")
    if not (math.isfinite(args.alpha) and 0.0 < args.alpha < 1.0):
        raise ConfigError(f"--alpha {args.alpha}: accepted: a significance level > 0 and < 1 (e.g. 0.01)")


def _history(args) -> int:
    from reports.history_report import write_history

    _check_significance(args)
    paths, n_regressions = write_history([Path(r) for r in args.runs], args.metric,
                                         Path(args.out) if args.out else None, order=args.order,
                                         ratio_threshold=args.threshold, alpha=args.alpha)
    for path in paths:
        print(path)
    return 1 if args.fail_on_regression and n_regressions else 0


def _compare(args) -> int:
    from reports.compare import write_comparison

    _check_significance(args)
    paths, n_regressions = write_comparison(Path(args.run_a), Path(args.run_b),
                                            Path(args.out) if args.out else None,
                                            ratio_threshold=args.threshold, alpha=args.alpha)
    print(paths[1].read_text())
    for path in paths:
        print(path)
    return 1 if args.fail_on_regression and n_regressions else 0


def _list(args) -> int:
    import power.registry
    import targets.backends
    import targets.registry
    import workloads.variants
    from harness.app.suite import suite_files
    from harness.core.plugins import registry
    from targets.spec import target_files
    from workloads.spec import workload_files

    files = {"targets": target_files, "suites": suite_files, "workloads": workload_files}
    plugins = {"adapters": targets.registry.GROUP, "backends": targets.backends.GROUP,  # kind -> its group
               "families": workloads.variants.GROUP, "power": power.registry.GROUP}
    for kind in [args.kind] if args.kind else [*files, *plugins]:
        if kind in files:
            print(f"{kind}: {', '.join(files[kind]())}")
            continue
        # plug-ins: each name with the distribution that declared it (edgebench's own or another package's)
        rows = [(p.name, p.origin + (f" (also declared by {', '.join(p.rivals)})" if p.rivals else ""), p.ref)
                for _, p in sorted(registry(plugins[kind]).items())]
        if kind == "power":
            rows.insert(0, ("none", "built in", "no power measurement"))
        print(f"{kind}:")
        name_w, origin_w = (max((len(row[i]) for row in rows), default=0) for i in (0, 1))
        for name, origin, ref in rows:
            print(f"  {name:<{name_w}}  {origin:<{origin_w}}  {ref}")
    return 0


def _absolute(name_or_path: str | None) -> str | None:
    """A file given by path, made absolute: run.json keeps the request, and --resume may run elsewhere."""
    if name_or_path and (name_or_path.endswith((".toml", ".onnx", ".npz", ".tflite")) or "/" in name_or_path):
        return str(Path(name_or_path).absolute())
    return name_or_path


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: accepted: a finite number (e.g. 0.5)")
    return value


def _positive_int(text: str) -> int:
    from harness.core.jobs import MAX_BATCH_SIZE

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(f"{text!r} is not a batch size; accepted: integers from 1 to "
                                         f"{MAX_BATCH_SIZE}")
    return value


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other error (subcommands' parsers are of this class too)."""

    def error(self, message: str):
        self.exit(2, f"edgebench: error: {self.prog}: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="edgebench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("bench", help="benchmark a suite (or one ONNX model) on a target")
    b.add_argument("--target", help="a name from targets/ or a target TOML file (default: cpu)")
    b.add_argument("--suite", help="a name from workloads/suites/ or a suite TOML file (default: quick)")
    b.add_argument("--workload", action="append", help="run this workload instead of the suite's "
                   "(repeatable; a name or a workload TOML file)")
    b.add_argument("--model", help="your own model (with --data): .onnx, .tflite, Keras .keras / .h5, or a "
                                   "SavedModel directory")
    b.add_argument("--data", help="its evaluation set: .npz with one array per model input, named after it (x "
                                  "for a single input), in the model's layout, and y (labels)")
    b.add_argument("--output", help="with --model: the output scored (default: the first)")
    b.add_argument("--metric", choices=list(METRICS), help="with --model: how the output is scored: top1 "
                   "(class scores, the default for an [N, C] output), label (an integer label output), binary "
                   "(one score per sample, positive at >= --threshold), none (latency and energy only)")
    b.add_argument("--threshold", type=_finite_float, help="with --metric binary: the positive threshold "
                                                           "(default 0.5)")
    b.add_argument("--calibration", help="with --model: a calibration .npz (as --data, y optional): adds "
                                         "static int8 variants")
    b.add_argument("--backend", action="append", help="limit to these backends (repeatable)")
    b.add_argument("--threads", action="append", help="thread counts: an integer or 'all' (repeatable)")
    b.add_argument("--batch-size", action="append", type=_positive_int, help="batch sizes (repeatable)")
    b.add_argument("--power", metavar="SOURCE[:KEY=VALUE,...]",
                   help="power source, overriding the target's [power]: e.g. um25c:port=/dev/rfcomm0, "
                        "emulated-ina219 (a labelled emulation), none")
    b.add_argument("--link", choices=["none"],
                   help="split computing: 'none' runs split jobs over loopback, unshaped (labelled so), instead "
                        "of the suite's [[link]] settings in network namespaces, and leaves out device_cpu_quota "
                        "(both need root)")
    b.add_argument("--server-address", metavar="ADDRESS",
                   help="split computing with a board as the device (or a remote server): the address at which "
                        "the device reaches the server (overrides the suite's [split] server_address)")
    b.add_argument("--stopping", choices=["fixed", "statistical"],
                   help="the stopping rule of the timed windows, overriding the suite's [protocol] stopping: "
                        "fixed (MLPerf Tiny's windows) or statistical (until the median is known to the suite's "
                        "median_ci_pct; a run with a power meter keeps the fixed rule)")
    b.add_argument("--dry-run", action="store_true",
                   help="print the jobs and the estimated measuring time under the stopping rule; build, open "
                        "and measure nothing")
    b.add_argument("--runs-dir", default="runs", help="where run directories go (default: runs)")
    b.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted run: only missing jobs run")
    b.add_argument("--quiet", action="store_true", help="no progress bars: one line per job (for CI)")
    b.add_argument("--no-report", action="store_true", help="do not write report.html / report.md")
    b.set_defaults(func=_bench)

    sp = sub.add_parser("splits", help="where can a network be cut between device and server, and what does "
                                       "each cut cost (payload bytes, head and tail MACs, natural bottlenecks)")
    sp.add_argument("--model", help="an ONNX model")
    sp.add_argument("--input-shape", help="one sample's shape, without the batch axis (when the model's is "
                                          "symbolic), e.g. 3,224,224")
    sp.add_argument("--workload", help="a workload (name or TOML file): its base model, trained if needed")
    sp.set_defaults(func=_splits)

    r = sub.add_parser("report", help="write report.html and report.md for a run, or one report over several "
                                      "runs (typically one per target)")
    r.add_argument("runs", nargs="+", metavar="RUN", help="run directories, e.g. runs/latest; one run: its own "
                                                          "report, inside it")
    r.add_argument("--out", help="where a report over several runs goes (default: runs/cross-<digest>)")
    r.add_argument("--budget-points", type=float, default=1.0,
                   help="accuracy budget for 'best variant per target': points below the target's fp32 "
                        "accuracy (default 1)")
    r.set_defaults(func=_report)

    rs = sub.add_parser("runs", help="the runs under a directory as a table: id, target, suite, started, commit, "
                                     "jobs ok / skipped / failed, valid share, energy source")
    rs.add_argument("dir", nargs="?", default="runs", help="where the runs are (default: runs)")
    rs.set_defaults(func=_runs)

    h = sub.add_parser("history", help="one metric of every job across runs, in time or commit order, with "
                                       "significant changes marked")
    h.add_argument("runs", nargs="+", metavar="RUN", help="run directories, e.g. runs/*")
    h.add_argument("--metric", default="latency_p50_ms", help="a numeric result column (default latency_p50_ms)")
    h.add_argument("--order", choices=["time", "commit"], default="time",
                   help="runs by start time, or by their commit's place in this repository's history")
    h.add_argument("--out", help="where history.html/.md go (default: runs/history-<metric>-<digest>)")
    h.add_argument("--fail-on-regression", action="store_true",
                   help="exit with status 1 when any job regressed (for CI)")

    c = sub.add_parser("compare", help="compare two runs job by job, with significance and regressions")
    c.add_argument("run_a", help="the reference run")
    c.add_argument("run_b", help="the run compared against it")
    c.add_argument("--out", help="where to write compare.html/.md (default: inside run_b)")
    c.add_argument("--fail-on-regression", action="store_true",
                   help="exit with status 1 when any job regressed (for CI)")
    c.set_defaults(func=_compare)
    for command in (c, h):
        command.add_argument("--threshold", type=float, default=1.10,
                             help="ratio that counts as a change when significant (default 1.10)")
        command.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    h.set_defaults(func=_history)

    ls = sub.add_parser("list", help="list targets, suites, workloads, and the plug-ins (adapters, backends, "
                                     "variant families, power sources) with the distribution of each")
    ls.add_argument("kind", nargs="?", choices=["targets", "suites", "workloads", "adapters", "backends",
                                                "families", "power"])
    ls.set_defaults(func=_list)
    return p


def _stop_on_sigterm(signum, frame) -> None:
    """A CI cancel or `timeout` sends SIGTERM: stop as Ctrl-C does (rows kept, one line, resumable)."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # a usage error (one line, said already) or --help
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except EdgebenchError as exc:
        print(f"edgebench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # outside the steps that say what they kept (e.g. before a run directory exists)
        print("edgebench: interrupted; a run keeps what it finished in its directory (edgebench bench --resume "
              "<run dir> goes on) and built artifacts stay in the cache", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
