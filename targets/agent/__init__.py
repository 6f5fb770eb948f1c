"""The board agent: the process that runs jobs on a device. The cpu target starts it locally for each
job, board targets start the same code over SSH (shipped as a zipapp, see targets/bundle.py).

Board-side: Python 3.8 syntax, the standard library, numpy and the runtimes it is asked to use.
    wire.py         the messages it speaks (shared with the host's driver)
    loop.py         reads the host's messages, answers them; stops when the host goes away
    measure.py      one job: load, accuracy pass, warm-up and timed windows, board-side energy
    facts.py        what the device is (CPU, cores, governor, runtimes); board_facts.py per board kind
    early_exit.py   running an early-exit artifact's stages
    split.py        a split job's two sides: the device's head and connection, the server's tail
    dataplane.py    the frames between them over TCP, the tail server, the device's timed calls
"""
