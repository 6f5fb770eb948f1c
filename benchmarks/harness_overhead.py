"""Does the harness add to what it measures? Its p50 against a bare runtime loop, same process, same buffers.

For each model, rounds alternate (interleaved, so machine noise hits both alike) between
  bare:    t0 = clock(); <the runtime's own call>; t1 = clock()     in a plain Python loop
  harness: harness.core.measurement.run_windows(*backend.runner(x), ...) as the agent runs it
and the script prints each side's median p50 and the median of the per-round ratios. The bare calls:
  onnxruntime  session.run(outputs, feed)
  tensorrt     context.execute_async_v3(stream); stream.synchronize()   (input and output already on the GPU;
               needs an NVIDIA GPU, TensorRT's Python bindings and torch with CUDA)

    .venv/bin/python benchmarks/harness_overhead.py [--backend onnxruntime|tensorrt] [--precision fp16]
                                                    [--rounds 10] [--round-s 1.0] [--workload NAME ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from harness.core.measurement import MeasurementProtocol, run_windows
from workloads.build import build_base
from workloads.spec import find_workload

clock_ns = time.monotonic_ns


def timed_loop_p50_ms(call, seconds: float) -> float:
    latency = []
    end = clock_ns() + int(seconds * 1e9)
    while True:
        t0 = clock_ns()
        call()
        t1 = clock_ns()
        latency.append(t1 - t0)
        if t1 >= end:
            break
    return float(np.percentile(latency, 50)) / 1e6


def bare_onnxruntime(backend, x: np.ndarray):
    session, outputs, feed = backend.session, None, {backend.input_names[0]: x}
    return lambda: session.run(outputs, feed)


def bare_tensorrt(backend, x: np.ndarray):
    _, buffers = backend.runner(x)  # binds GPU input and output buffers: kept alive by the closure below
    execute, handle, synchronize = backend.context.execute_async_v3, backend.stream.cuda_stream, \
        backend.stream.synchronize

    def call():
        execute(handle)
        synchronize()
        return buffers
    return call


BARE = {"onnxruntime": bare_onnxruntime, "tensorrt": bare_tensorrt}


def make_backend(name: str, options: dict):
    if name == "onnxruntime":
        from targets.backends.ort_backend import OrtBackend
        return OrtBackend(threads=1, options=options)
    from targets.backends.tensorrt_backend import TensorRtBackend
    return TensorRtBackend(threads=1, options=options)


def harness_p50_ms(backend, x: np.ndarray, seconds: float) -> float:
    settings = MeasurementProtocol(warmup_min_iterations=0, warmup_min_s=0.0, n_windows=1,
                                   window_min_s=seconds, window_min_iterations=1)
    call, args = backend.runner(x)
    timed = run_windows(call, args, settings)
    return float(np.percentile(np.frombuffer(timed.latency_ns, dtype=np.int64), 50)) / 1e6


def measure(workload_name: str, backend_name: str, options: dict, rounds: int, round_s: float) -> dict:
    base = build_base(find_workload(workload_name))
    artifact = base.artifact("fp32", "baseline", "fp32").to_dict()
    backend = make_backend(backend_name, options)
    backend.load(artifact)
    x_eval, _ = base.data.load_eval()
    x = np.ascontiguousarray(x_eval[:1])
    bare_call = BARE[backend_name](backend, x)
    timed_loop_p50_ms(bare_call, 1.0)  # warm-up, untimed
    bare, harness = [], []
    for i in range(rounds):
        # alternate which side goes first, so neither always runs on a warmer machine
        order = (("bare", "harness") if i % 2 == 0 else ("harness", "bare"))
        for side in order:
            if side == "bare":
                bare_call = BARE[backend_name](backend, x)  # the harness round bound buffers of its own
                bare.append(timed_loop_p50_ms(bare_call, round_s))
            else:
                harness.append(harness_p50_ms(backend, x, round_s))
    ratios = [h / b for h, b in zip(harness, bare)]
    return {"workload": workload_name, "bare_p50_ms": statistics.median(bare),
            "harness_p50_ms": statistics.median(harness), "ratio": statistics.median(ratios),
            "ratio_min": min(ratios), "ratio_max": max(ratios), "info": backend.info()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=sorted(BARE), default="onnxruntime")
    parser.add_argument("--precision", choices=["fp32", "fp16"], help="tensorrt: the engine's precision "
                                                                      "(default fp32)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--round-s", type=float, default=1.0)
    parser.add_argument("--workload", action="append", help="default: digits-cnn and mnist-resnet8")
    args = parser.parse_args()
    if args.precision and args.backend != "tensorrt":
        parser.error("--precision is a tensorrt option")
    options = {"precision": args.precision} if args.precision else {}
    print(f"backend {args.backend} {options or ''}")
    print(f"{'workload':16s} {'bare p50 ms':>12s} {'harness p50 ms':>15s} {'harness/bare':>13s} "
          f"{'(min..max over rounds)':>24s}")
    for name in args.workload or ["digits-cnn", "mnist-resnet8"]:
        r = measure(name, args.backend, options, args.rounds, args.round_s)
        print(f"{r['workload']:16s} {r['bare_p50_ms']:12.4f} {r['harness_p50_ms']:15.4f} "
              f"{r['ratio']:13.3f} {r['ratio_min']:>11.3f}..{r['ratio_max']:.3f}")
        print(f"{'':16s} {r['info']}")


if __name__ == "__main__":
    main()
