"""The ground floor: what every other package may import, importing nothing of the project itself.

errors, TOML reading (config), jobs and artifacts, the measurement protocol, statistics, the result
schema and run directory, hashing, the host environment. Parts of it (measurement, errors, datatypes,
traces) also run inside the board agent: those stay on Python 3.8 syntax, the standard library and numpy.
"""
