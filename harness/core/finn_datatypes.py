"""Quantized datatype names (FINN's and QONNX's): checked where an fpga variant is parsed on the host,
used where the FINN backend packs data on the board (Python 3.8, standard library only)."""


def parse_datatype(name):
    """FINN DataType names: UINT8, INT4, BIPOLAR, BINARY -> (bits, kind)."""
    name = name.upper()
    if name == "BIPOLAR":
        return 1, "bipolar"
    if name == "BINARY":
        return 1, "uint"
    for prefix, kind in (("UINT", "uint"), ("INT", "int")):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return int(name[len(prefix):]), kind
    raise ValueError("unknown FINN datatype {!r}; accepted: UINTn, INTn, BIPOLAR, BINARY".format(name))
