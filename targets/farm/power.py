"""A place's power, through labgrid's PowerProtocol: the power port its exporter offers (a networked PDU,
a PDUDaemon port, a Tasmota plug) driven by labgrid's own driver for it, or else the target file's
power_cycle_command through labgrid's ExternalPowerDriver."""

from __future__ import annotations

import shlex

# resource class an exporter offers -> labgrid's driver for it (the classes labgrid-client's `power` drives
# without the exporter's help)
POWER_DRIVERS = {
    "NetworkPowerPort": "NetworkPowerDriver",
    "PDUDaemonPort": "PDUDaemonDriver",
    "TasmotaPowerPort": "TasmotaPowerDriver",
}
OFF_DELAY_S = 2.0


def power_driver(place: str, resources: dict[str, dict], cycle_command: str | None):
    """A labgrid PowerProtocol driver for the place (activated), or None when it has no power control."""
    from labgrid import Target
    from labgrid.factory import target_factory

    target = Target(place)
    for cls, driver in POWER_DRIVERS.items():
        if cls in resources:
            target_factory.make_resource(target, cls, cls, resources[cls])
            power = target_factory.make_driver(target, driver, None, {"delay": OFF_DELAY_S})
            target.activate(power)
            return power
    if cycle_command:
        from labgrid.driver.powerdriver import ExternalPowerDriver

        # the place's name goes in as one quoted word: a coordinator's name never becomes shell syntax
        command = cycle_command.replace("{place}", shlex.quote(place))
        # on and off are what a cycle means here: the command is the only control the target file gives
        power = ExternalPowerDriver(target, None, cmd_on=command, cmd_off=command, cmd_cycle=command)
        target.activate(power)
        return power
    return None


def describe(power) -> str:
    return type(power).__name__ if power is not None else "no power control"
