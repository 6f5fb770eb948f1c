"""Reports: one or more runs turned into report.html / report.md (trade-off plots, Pareto fronts,
latency distributions) and run-to-run comparisons with significance and regression verdicts."""
