"""edgebench harness. Two floors: `harness.core` (the ground every package imports) and `harness.app`
(the top that wires workloads, targets, power and reports together). This file imports nothing."""

__version__ = "0.1.0"
