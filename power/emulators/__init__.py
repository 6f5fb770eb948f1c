"""Meter emulators: each opens a pty pair and speaks its meter's real wire protocol at the meter's pace,
driven by a power profile. The harness reads them through the same serial code as real hardware.
Everything they produce is labelled as emulated."""
