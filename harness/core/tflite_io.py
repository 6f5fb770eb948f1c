"""A .tflite model's input and output tensors under the names a user knows. A model converted from
TensorFlow names its tensors `serving_default_<name>:0` (inputs) and `StatefulPartitionedCall:<i>`
(outputs); its signature keeps the original names. The host (checks, host accuracy) and the LiteRT
backends on the device both read the tensors here, so they agree on names and order. Python 3.8."""

from __future__ import annotations


def _signature_names(interpreter, kind: str) -> dict:
    """Tensor index -> signature name, when the model has exactly one signature (else none)."""
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        return {}
    runner = interpreter.get_signature_runner(next(iter(signatures)))
    details = runner.get_input_details() if kind == "inputs" else runner.get_output_details()
    return {d["index"]: name for name, d in details.items()}


def tensors(interpreter, kind: str) -> list:
    """The interpreter's input (kind "inputs") or output ("outputs") details in its order, each with
    "name" set to the signature's name where there is one."""
    details = interpreter.get_input_details() if kind == "inputs" else interpreter.get_output_details()
    names = _signature_names(interpreter, kind)
    return [dict(d, name=names.get(d["index"], d["name"])) for d in details]
