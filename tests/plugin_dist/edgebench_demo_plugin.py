"""An edgebench plug-in distribution in one module: a target, a runtime backend, a power source and a
variant family, each declared by an entry point in pyproject.toml; no edgebench file names them.

The backend runs inside the agent, which imports it by reference: on a board this module must be
importable by the board's Python too (here the cpu target's local agent inherits PYTHONPATH).
"""

from power.polling import PollingSource
from targets.backends.base import Backend, require_runtime
from targets.cpu import CpuSession, CpuTarget

DISTRIBUTION = "edgebench-plugin-demo"


# --- target: the local CPU under another adapter name, saying so in the run's device facts ------------

class DemoCpuSession(CpuSession):
    def info(self):
        facts = super().info()
        facts["adapter_plugin"] = DISTRIBUTION
        return facts


class DemoCpuTarget(CpuTarget):
    def open(self):
        return DemoCpuSession(self.spec)


# --- backend: onnxruntime's CPU provider with its defaults, under this plug-in's own name --------------

class DemoOrtBackend(Backend):
    name = "demo-ort"

    def load(self, artifact):
        ort = require_runtime("onnxruntime", "onnxruntime")
        self.check_options(())
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        path = self.artifact_file(artifact, "onnx", "ONNX files")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self._fixed_batch = first.shape[0] if isinstance(first.shape[0], int) else None
        self.output_names = [self.session.get_outputs()[0].name]
        self._version = ort.__version__

    def predict(self, x):
        return self.session.run(self.output_names, {self.input_name: x})[0]

    def runner(self, x):
        return self.session.run, (self.output_names, {self.input_name: x})

    @property
    def fixed_batch(self):
        return self._fixed_batch

    def info(self):
        return {"runtime": "onnxruntime", "version": self._version, "plugin": DISTRIBUTION}


# --- power source: an estimate, so labelled emulated ----------------------------------------------------

class CpuLoadPower(PollingSource):
    """Not a meter: this machine's CPU utilisation (from /proc/stat) through a linear power model, idle_w
    at 0 % and busy_w at 100 %. `emulated` (and the name) make every row and report say so."""

    name = "emulated-cpu-load"
    emulated = True
    ON_DEVICE = False
    DEFAULTS = {"rate_hz": 50.0, "idle_w": 2.0, "busy_w": 15.0, "stat": "/proc/stat"}

    def __init__(self, rate_hz, idle_w, busy_w, stat):
        super().__init__(rate_hz)
        self.idle_w, self.busy_w, self.stat = idle_w, busy_w, stat
        self.last = None   # (total ticks, idle ticks) at the previous read
        self.load = 0.0

    def where(self):
        return "it reads {} (Linux)".format(self.stat)

    def read(self):
        with open(self.stat) as fh:
            ticks = [int(v) for v in fh.readline().split()[1:9]]  # user .. steal of the "cpu" line
        total, idle = sum(ticks), ticks[3] + ticks[4]
        if self.last is not None and total > self.last[0]:  # ticks come at 100 Hz: keep the last load
            self.load = 1.0 - (idle - self.last[1]) / (total - self.last[0])
        self.last = (total, idle)
        nan = float("nan")
        return nan, nan, self.idle_w + (self.busy_w - self.idle_w) * self.load


# --- variant family: the base model with fp16 weights and activations (fp32 inputs and outputs) -------

class Fp16Family:
    @staticmethod
    def parse(table):
        table.finish()  # no parameters
        return {}

    @staticmethod
    def precision(params):
        return "fp16"

    @staticmethod
    def build(base, variant):

        def make(tmp):
            import onnx
            from onnxruntime.transformers.float16 import convert_float_to_float16

            model = convert_float_to_float16(onnx.load(str(base.onnx_path)), keep_io_types=True)
            onnx.save(model, str(tmp / "model.onnx"))
            return {"built_by": DISTRIBUTION}

        folder = base.build_variant(variant, make)
        return base.artifact(variant.name, variant.family, variant.precision, folder, variant.params,
                             same_macs_as_base=True)
