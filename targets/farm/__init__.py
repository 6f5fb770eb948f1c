"""A board farm: one run across many boards shared through a labgrid coordinator.

spec        the target file's [farm] section (read without labgrid: the single-board path never needs it)
coordinator labgrid's client session on a thread of its own: places, reservations, acquire and release
lease       the places this run holds: reserved, acquired, released on every way out
board       one acquired place: its NetworkService as an SSH board target, its power port, its liveness
queue       the jobs shared by the boards' workers (each board one job at a time)
"""
