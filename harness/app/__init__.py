"""The top floor: the CLI, the runner, row assembly and progress. It alone wires workloads, targets,
power and reports together; nothing imports it."""
