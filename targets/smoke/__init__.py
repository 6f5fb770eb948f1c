"""One inference per runtime (and per onnxruntime provider) on the device: what is installed is not what
works (onnxruntime lists providers compiled in, not ones whose libraries load). Board-side, 3.8."""

import pkgutil

import numpy as np

X = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)


def _model(name):
    return pkgutil.get_data(__name__, name)  # works from the shipped zipapp too


def _check(y):
    if not np.allclose(np.asarray(y).reshape(-1), X.reshape(-1) + 1.0):
        raise RuntimeError("wrong result {}".format(np.asarray(y).reshape(-1).tolist()))


def _onnxruntime():
    import onnxruntime as ort

    working, failing = [], {}
    for provider in ort.get_available_providers():
        try:
            session = ort.InferenceSession(_model("add.onnx"), providers=[provider])
            if session.get_providers()[0] != provider:
                raise RuntimeError("fell back to " + session.get_providers()[0])
            _check(session.run(None, {"x": X})[0])
            working.append(provider)
        except Exception as exc:  # a provider whose libraries do not load raises anything
            failing[provider] = "{}: {}".format(type(exc).__name__, str(exc)[:200])
    return {"version": ort.__version__, "providers": working, "failing_providers": failing}


def _interpreter(module_name):
    def run():
        import importlib

        module = importlib.import_module(module_name)
        interpreter = module.Interpreter(model_content=_model("add.tflite"))
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], X)
        interpreter.invoke()
        _check(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
        return {}
    return run


def _torch():
    import torch

    _check((torch.from_numpy(X) + 1).numpy())
    facts = {"version": torch.__version__, "cuda": False}
    if torch.cuda.is_available():
        _check((torch.from_numpy(X).cuda() + 1).cpu().numpy())
        facts.update(cuda=True, gpu=torch.cuda.get_device_name(0))
    return facts


def _tensorrt():
    import tensorrt as trt

    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    return {"version": trt.__version__, "platform_has_fast_fp16": bool(builder.platform_has_fast_fp16)}


CHECKS = {"onnxruntime": _onnxruntime, "litert": _interpreter("ai_edge_litert.interpreter"),
          "tflite-runtime": _interpreter("tflite_runtime.interpreter"), "torch": _torch,
          "tensorrt": _tensorrt}


def smoke_tests(names=None):
    """{runtime: {"ok": bool, ...facts or "reason"}} for each runtime asked for (default: all)."""
    results = {}
    for name in names or CHECKS:
        try:
            results[name] = dict(CHECKS[name](), ok=True)
        except ImportError as exc:
            results[name] = {"ok": False, "reason": "not installed ({})".format(exc)}
        except Exception as exc:  # the point is to report any failure, not to stop at it
            results[name] = {"ok": False, "reason": "{}: {}".format(type(exc).__name__, str(exc)[:200])}
    return results
