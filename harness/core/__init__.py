"""The ground floor: what every other package may import, importing nothing of the project itself.

errors, TOML reading (config), jobs and artifacts, the measurement protocol, statistics, the result
schema, run directory and migrations, baselines, hashing, the host environment, plug-in loading. Parts of
it run inside the board agent too (measurement, errors, plugins, finn_datatypes, quantization, traces):
those stay on Python 3.8 syntax, the standard library and numpy (tests/targets/test_agent_portability.py).
"""
