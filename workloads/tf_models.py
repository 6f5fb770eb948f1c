"""A user's TensorFlow model (Keras 3 `.keras`, legacy `.h5`, or a SavedModel directory) converted on the host
with TensorFlow's own tools: the TFLite converter (fp32, dynamic-range, full-integer int8) and tf2onnx.

Every route goes through one serving function that takes the inputs by name and returns a dict of named
outputs, so the names agree across formats: the .tflite signature's inputs and outputs and the ONNX graph's
inputs and outputs are named like `tf_input_names` (and the Keras output names), and one eval .npz keyed by
input name feeds the Keras model, the .tflite and the .onnx alike.

- Keras models are exported to a temporary SavedModel with that function as its serving signature, then
  converted with `TFLiteConverter.from_saved_model`. `from_keras_model` works with Keras 3 too, but it goes
  through `model.export`, whose signature names the outputs `output_0, output_1, ...` instead of the Keras
  output names.
- SavedModel directories keep their own `serving_default` signature: its keyword names are the input
  names (a signature has no order, so they are listed sorted, as TensorFlow flattens them), its output keys
  the output names.
- The .tflite has its batch axis fixed at 1 (the signature's shape_signature keeps -1). The TFLite
  converter orders `get_input_details()` by its own choosing (often reversed) and names those tensors
  `serving_default_<name>:0`: feed it through the signature runner, whose keys are the input names.
- The ONNX model keeps a dynamic batch axis, named "batch", wherever TensorFlow declares axis 0 unknown.

TensorFlow is an optional extra (`pip install 'edgebench[tensorflow]'`), imported only here, when needed.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.core.errors import ConfigError
from workloads.datasets import sample_indices
from workloads.quiet import ConverterError, import_converter, native_output_captured

TF_SUFFIXES = (".keras", ".h5", ".hdf5")
QUANTIZATIONS = ("none", "dynamic", "int8")
CALIBRATION_SAMPLES = 200
SIGNATURE = "serving_default"


def is_tf_model(path: Path) -> bool:
    """A Keras file by its name (so that a missing one still gets this module's error), or a SavedModel
    directory."""
    path = Path(path)
    if path.is_dir():
        return (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()
    return path.suffix.lower() in TF_SUFFIXES


def _tensorflow(path: Path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ info and warnings; read once, at import
    tf = import_converter("tensorflow", path, "TensorFlow/Keras models need TensorFlow to convert them",
                          "tensorflow")
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)  # Keras' "saving as HDF5 is legacy" and such
    tf.get_logger().setLevel("ERROR")
    return tf


@dataclass
class _Model:
    """A model as one serving function: named input tensors in, a dict of named outputs out."""

    serve: Callable[..., dict]  # keyword arguments by input name
    inputs: list  # tf.TensorSpec, named after the input, in the model's order
    outputs: list  # tf.TensorSpec, named after the output, in the model's order
    keras: Any = None  # the Keras model (None for a SavedModel directory)
    saved_model: Any = None  # keeps a loaded SavedModel's variables alive while `serve` is used


def _load(path: Path) -> _Model:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file or directory (expected a Keras .keras/.h5 file or a SavedModel "
                          f"directory)")
    if path.is_dir() and not is_tf_model(path):
        raise ConfigError(f"{path}: not a SavedModel directory (it has no saved_model.pb)")
    if not path.is_dir() and path.suffix.lower() not in TF_SUFFIXES:
        raise ConfigError(f"{path}: not a TensorFlow model (expected a file ending in "
                          f"{', '.join(TF_SUFFIXES)}, or a SavedModel directory)")
    tf = _tensorflow(path)
    return _saved_model(tf, path) if path.is_dir() else _keras_model(tf, path)


def _keras_model(tf, path: Path) -> _Model:
    import keras

    try:
        with native_output_captured(f"loading {path}"):
            model = keras.models.load_model(path, compile=False)
    except ConverterError as exc:
        raise ConfigError(f"{path}: not a Keras model Keras can load ({exc.__cause__})") from None
    try:
        flat_inputs = list(model.inputs)
    except (AttributeError, ValueError):
        flat_inputs = []
    if not flat_inputs:
        raise ConfigError(f"{path}: the Keras model has no defined inputs (a subclassed model that was never "
                          f"built); save a functional or Sequential model, or export a SavedModel")
    inputs = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in flat_inputs]
    names = _keras_output_names(model)
    outputs = [tf.TensorSpec(t.shape, t.dtype, name=name) for t, name in zip(model.outputs, names)]

    def serve(**feed):
        # one input goes in as the tensor itself (Sequential warns about a dict); several by name, which
        # Keras matches to its inputs whatever their structure
        given = feed[inputs[0].name] if len(inputs) == 1 else feed
        produced = model(given, training=False)
        flat = [produced[name] for name in names] if isinstance(produced, dict) else keras.tree.flatten(produced)
        return dict(zip(names, flat))

    return _Model(serve, inputs, outputs, keras=model)


def _keras_output_names(model) -> list[str]:
    try:
        structure = model.output  # a Sequential that was never called has none
    except AttributeError:
        structure = None
    if isinstance(structure, dict):
        return list(structure)
    names = list(getattr(model, "output_names", None) or [])  # the output layers' names (functional)
    if not names and len(model.outputs) == 1:
        names = [model.layers[-1].name]  # Sequential
    if len(names) != len(model.outputs) or len(set(names)) != len(names):
        names = [f"output_{i}" for i in range(len(model.outputs))]
    return names


def _saved_model(tf, path: Path) -> _Model:
    try:
        with native_output_captured(f"loading {path}"):
            loaded = tf.saved_model.load(str(path))
    except ConverterError as exc:
        raise ConfigError(f"{path}: not a SavedModel TensorFlow can load ({exc.__cause__})") from None
    signatures = dict(loaded.signatures)
    if SIGNATURE not in signatures:
        raise ConfigError(f"{path}: the SavedModel has no \"{SIGNATURE}\" signature to convert (it has: "
                          f"{', '.join(signatures) or 'none'}); export it with one")
    function = signatures[SIGNATURE]
    given = function.structured_input_signature[1]
    inputs = [tf.TensorSpec(given[name].shape, given[name].dtype, name=name) for name in sorted(given)]
    produced = function.structured_outputs
    outputs = [tf.TensorSpec(produced[name].shape, produced[name].dtype, name=name) for name in sorted(produced)]
    return _Model(function, inputs, outputs, saved_model=loaded)


def _serving_function(tf, model: _Model):
    """The model as a tf.function over positional tensors named after the inputs, in the model's order."""
    names = [spec.name for spec in model.inputs]

    @tf.function(input_signature=model.inputs)
    def serving(*args):
        return model.serve(**dict(zip(names, args)))

    return serving


def tf_input_names(path: Path) -> list[str]:
    """The model's input names in order: the Keras input names, or a SavedModel signature's (sorted)."""
    return [spec.name for spec in _load(path).inputs]


def tf_output_names(path: Path) -> list[str]:
    """The model's output names in order: the Keras output layers' names (the keys of a dict output), or a
    SavedModel signature's output keys (sorted)."""
    return [spec.name for spec in _load(path).outputs]


def tf_to_tflite(path: Path, out: Path, quantization: str,
                 calibration: dict[str, np.ndarray] | None = None) -> None:
    """quantization: "none" (fp32), "dynamic" (dynamic-range: int8 weights, float activations), "int8"
    (full-integer: int8 weights, activations, input and output; needs `calibration`: input name -> array
    with samples on axis 0, as many samples as given, up to 200 used)."""
    path = Path(path)
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"{path}: TFLite quantization \"{quantization}\" is not one of: "
                          f"{', '.join(QUANTIZATIONS)}")
    model = _load(path)
    samples = _calibration_samples(path, model, calibration) if quantization == "int8" else None
    tf = _tensorflow(path)
    with tempfile.TemporaryDirectory(prefix="edgebench-tf-") as tmp:
        source = path
        if model.keras is not None:
            source = Path(tmp) / "saved_model"
            with native_output_captured(f"exporting {path} to a SavedModel"):
                _export(tf, model, source)
        with native_output_captured(f"converting {path} to TFLite"), warnings.catch_warnings():
            # calibration runs in tf.lite.Interpreter, which warns that it is deprecated, every time
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            converter = tf.lite.TFLiteConverter.from_saved_model(str(source), signature_keys=[SIGNATURE])
            if quantization != "none":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if quantization == "int8":
                # the dataset yields a dict by signature input name; a list would be fed in the converter's
                # own input order, which is not the model's
                converter.representative_dataset = lambda: iter(samples)
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
            flatbuffer = converter.convert()
    Path(out).write_bytes(flatbuffer)


def _export(tf, model: _Model, folder: Path) -> None:
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model.keras)
    # "serve" is also written as the "serving_default" signature, its inputs named after the TensorSpecs
    archive.add_endpoint("serve", _serving_function(tf, model))
    archive.write_out(str(folder), verbose=False)


def _calibration_samples(path: Path, model: _Model, calibration: dict[str, np.ndarray] | None) -> list[dict]:
    """One dict by input name per calibration sample, up to CALIBRATION_SAMPLES spread over what is given.
    An array with exactly the input's own (fully known) shape is a constant, fed whole with every sample."""
    names = [spec.name for spec in model.inputs]
    if not calibration:
        raise ConfigError(f"{path}: full-integer int8 needs calibration data: one array per input "
                          f"({', '.join(names)}), samples on axis 0")
    missing = [name for name in names if name not in calibration]
    if missing:
        raise ConfigError(f"{path}: the calibration data has no array for input(s) {', '.join(missing)} "
                          f"(it has: {', '.join(calibration)}; the model's inputs: {', '.join(names)})")
    constants, per_sample = {}, {}
    for spec in model.inputs:
        array = np.asarray(calibration[spec.name]).astype(spec.dtype.as_numpy_dtype, copy=False)
        declared = spec.shape.as_list()
        if None not in declared and list(array.shape) == declared:
            constants[spec.name] = array
        else:
            per_sample[spec.name] = array
    counts = {len(array) for array in per_sample.values()}
    if len(counts) > 1:
        raise ConfigError(f"{path}: the calibration arrays hold different numbers of samples on axis 0 ("
                          f"{', '.join(f'{name}: {len(array)}' for name, array in per_sample.items())})")
    count = counts.pop() if counts else 1
    if count == 0:
        raise ConfigError(f"{path}: the calibration data holds no samples")
    picks = sample_indices(count, CALIBRATION_SAMPLES)
    return [{**constants, **{name: array[i:i + 1] for name, array in per_sample.items()}} for i in picks]


def tf_to_onnx(path: Path, out: Path, opset: int = 17) -> None:
    """ONNX via tf2onnx (from the Keras model or the SavedModel's serving signature), with a dynamic batch
    axis."""
    path = Path(path)
    model = _load(path)
    tf = _tensorflow(path)
    tf2onnx = import_converter("tf2onnx", path, "converting TensorFlow models to ONNX needs tf2onnx", "tensorflow")
    with native_output_captured(f"converting {path} to ONNX"):
        # tf2onnx names the graph's inputs after the TensorSpecs and its outputs after the dict's keys
        proto, _ = tf2onnx.convert.from_function(_serving_function(tf, model), input_signature=model.inputs,
                                                 opset=opset)
    _name_graph(path, proto, model)
    import onnx

    onnx.save(proto, str(out))


def _name_graph(path: Path, proto, model: _Model) -> None:
    """Inputs and outputs in the model's order, their unknown axis 0 named "batch"; checks the names."""
    graph = proto.graph
    for values, specs in ((graph.input, model.inputs), (graph.output, model.outputs)):
        wanted = [spec.name for spec in specs]
        for value in values:
            if value.name not in wanted and value.name.rsplit(":", 1)[0] in wanted:  # a TF tensor name
                _rename(graph, value, value.name.rsplit(":", 1)[0])
        by_name = {value.name: value for value in values}
        if sorted(by_name) != sorted(wanted):
            raise ConverterError(f"converting {path} to ONNX named the graph's inputs/outputs "
                                 f"{', '.join(by_name)}, not {', '.join(wanted)}")
        ordered = [by_name[name] for name in wanted]
        for value, spec in zip(ordered, specs):
            shape = spec.shape.as_list()
            dims = value.type.tensor_type.shape.dim
            if shape and shape[0] is None and dims and not dims[0].HasField("dim_value"):
                dims[0].dim_param = "batch"
        copies = [type(value)() for value in ordered]
        for copy, value in zip(copies, ordered):
            copy.CopyFrom(value)
        del values[:]
        values.extend(copies)


def _rename(graph, value, name: str) -> None:
    for node in graph.node:
        for names in (node.input, node.output):
            renamed = [name if each == value.name else each for each in names]
            del names[:]
            names.extend(renamed)
    value.name = name
