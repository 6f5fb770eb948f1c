"""Power: sources that sample voltage, current and power, and the energy accounting every source shares.

A source produces a `PowerTrace` (timestamped samples on the monotonic clock the timing windows use);
`power.energy` integrates it over each window. Emulators speak each meter's real wire protocol on a pty
for tests and demos; their energy is always labelled as emulated.
"""
