"""edgebench harness: configuration, planning, the measurement protocol, results and the CLI.

It knows no model, board or meter by name; those live in workloads/, targets/ and power/.
"""

__version__ = "0.1.0"
