"""Names that become paths and ids, seeds and evaluation data: every bad one is one ConfigError line that
names the file, key and value and says what is accepted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_workload_toml, write

from harness.app.cli import main
from harness.core.errors import ConfigError
from harness.core.jobs import NAME_RE, check_unique_ids, expand
from workloads.signatures import ModelSignature, TensorSpec
from workloads.spec import load_workload, safe_name, user_model_workload
from workloads.user_data import prepare_user_data

BAD_NAMES = ["a/b", "/abs/path", "../up", "int8 dyn", "-flag", "a__b", ".hidden", "trailing-", "", "é",
             "x" * 65, "tab\there"]


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and "accepted" in message, message
    return message


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_workload_name_outside_the_safe_alphabet_is_refused(tmp_path, name):
    path = write(tmp_path / "w.toml", tiny_workload_toml().replace('name = "tiny-digits"',
                                                                     f"name = {name!r}".replace("'", '"')))
    with pytest.raises(ConfigError) as exc:
        load_workload(path)
    message = one_line(exc)
    assert message.startswith(f"{path}: key 'workload.name' = ") and "letters, digits" in message


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_variant_name_outside_the_safe_alphabet_is_refused(tmp_path, name):
    text = tiny_workload_toml() + f'\n[[variants]]\nname = "{name}"\nfamily = "quantize"\n'
    path = write(tmp_path / "w.toml", text.replace("\t", "\\t"))
    with pytest.raises(ConfigError) as exc:
        load_workload(path)
    assert one_line(exc).startswith(f"{path}: key 'variants[1].name' = ")


@pytest.mark.parametrize("name", ["fp32", "int8-dynamic", "exit-t0.5", "w4a4_v2", "A", "tflite-fp32"])
def test_names_in_the_safe_alphabet_are_accepted(name):
    assert NAME_RE.fullmatch(name)


def test_the_suffixes_a_family_adds_stay_in_the_alphabet(tmp_path):
    text = tiny_workload_toml() + ('\n[[variants]]\nname = "exit"\nfamily = "early_exit"\n'
                                   'thresholds = [0.5, 0.00001]\n')
    workload = load_workload(write(tmp_path / "w.toml", text))
    assert all(NAME_RE.fullmatch(v.name) for v in workload.variants)


@pytest.mark.parametrize("table, key", [("dataset", "seed"), ("training", "seed")])
@pytest.mark.parametrize("value", [-1, 2**32])
def test_a_seed_out_of_range_is_refused(tmp_path, table, key, value):
    text = tiny_workload_toml().replace(f"[{table}]\n", f"[{table}]\n    {key} = {value}\n", 1)
    text = text.replace("seed = 0\n", "", 1) if table == "dataset" else text
    path = write(tmp_path / "w.toml", text)
    with pytest.raises(ConfigError) as exc:
        load_workload(path)
    message = one_line(exc)
    assert message.startswith(f"{path}: key '{table}.{key}' = {value}: accepted: values >= 0")
    assert message.endswith(f"<= {2**32 - 1}")


def test_two_names_that_would_share_a_job_id_are_refused_before_any_job():
    from workloads.spec import VariantSpec, WorkloadSpec

    def workload(name, *variants):
        return WorkloadSpec(name, Path(f"{name}.toml"), "", None, None, None,
                            tuple(VariantSpec(v, "baseline", "fp32", {}) for v in variants))

    # names a job id would have mapped to one id (what the alphabet now refuses at the file)
    with pytest.raises(ConfigError) as exc:
        expand([workload("w", "int8 dyn", "int8-dyn")], "cpu", ["onnxruntime"], [1], [1], "quick")
    message = one_line(exc)
    assert message.startswith("job id 'w__int8-dyn__onnxruntime__t1__b1': ")
    assert "variant 'int8 dyn' and workload 'w' variant 'int8-dyn'" in message
    # one workload twice (two files with the same name)
    with pytest.raises(ConfigError, match="variant 'fp32' is planned twice"):
        expand([workload("w", "fp32"), workload("w", "fp32")], "cpu", ["onnxruntime"], [1], [1], "quick")
    check_unique_ids(expand([workload("w", "fp32", "int8")], "cpu", ["onnxruntime", "torch"], [1, 2],
                            [1], "quick"))


def test_two_workload_files_with_one_name_are_refused(tmp_path):
    from workloads.spec import workload_files

    write(tmp_path / "a.toml", tiny_workload_toml())
    write(tmp_path / "b.toml", tiny_workload_toml())
    with pytest.raises(ConfigError) as exc:
        workload_files(tmp_path)
    assert one_line(exc).startswith(f"{tmp_path / 'b.toml'}: key 'workload.name' = 'tiny-digits': ")


@pytest.mark.parametrize("stem, name", [("my model", "my-model"), ("a__b", "a-b"), ("__", "model"),
                                        ("net.v2", "net.v2"), ("-x", "x")])
def test_a_user_model_is_named_safely_after_its_file(stem, name):
    assert safe_name(stem) == name
    assert user_model_workload(Path(f"/m/{stem}.onnx"), Path("/m/eval.npz")).name == name


def test_a_bad_name_through_the_cli_is_one_line_and_exit_2(tmp_path, capsys):
    path = write(tmp_path / "w.toml", tiny_workload_toml(name="../../outside"))
    assert main(["bench", "--workload", str(path), "--runs-dir", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"edgebench: error: {path}: key 'workload.name' = '../../outside'") and "\n" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ---- evaluation data ----

def npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


# a model taking [batch, 4] floats and giving 3 class scores
SIG = ModelSignature((TensorSpec("features", np.dtype(np.float32), ("batch", 4)),),
                     (TensorSpec("scores", np.dtype(np.float32), ("batch", 3)),))


def load_eval_npz(path: Path):
    data = prepare_user_data(path, SIG)
    arrays = data.arrays()
    return arrays["x"], arrays["y"]


@pytest.mark.parametrize("make, says", [
    (lambda p: (np.save(p.with_suffix(".npy"), np.zeros((3, 4))), p.with_suffix(".npy"))[1],
     "a single array (.npy), not an .npz archive"),
    (lambda p: npz(p, x=np.float32(1.0), y=np.array([0])),
     "'x' has shape []; the model's input 'features' [batch, 4] float32"),
    (lambda p: npz(p, x=np.array(["a", "b"]), y=np.array([0, 1])), "'x' has dtype <U1"),
    (lambda p: npz(p, x=np.zeros((2, 4)), y=np.int64(1)), "'y' must be a 1-D array"),
    (lambda p: npz(p, x=np.zeros((2, 4)), y=np.array([0.5, 1.0])), "'y' must be a 1-D array"),
    (lambda p: npz(p, x=np.zeros((2, 4))), "missing array(s) y"),
    (lambda p: npz(p, x=np.zeros((2, 4)), y=np.array([0, 1, 2])), "the inputs have 2 samples and 'y' has 3"),
    (lambda p: npz(p, x=np.zeros((0, 4)), y=np.array([], np.int64)), "have {'x': 0} samples"),
    (lambda p: npz(p, x=np.zeros((2, 4)), y=np.array([0, -1])), "label -1 in 'y' is negative"),
    (lambda p: (p.write_text("x,y\n1,2\n"), p)[1], "not readable"),
    (lambda p: (p.write_bytes(b"PK\x03\x04broken"), p)[1], "not readable"),
    (lambda p: p.parent / "absent.npz", "evaluation set not found"),
    (lambda p: (p.mkdir(), p)[1], "not readable"),
])
def test_bad_evaluation_data_is_one_line(tmp_path, make, says):
    path = make(tmp_path / "eval.npz")
    with pytest.raises(ConfigError) as exc:
        load_eval_npz(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: ") and says in message and "\n" not in message


def test_good_evaluation_data_loads(tmp_path):
    x, y = load_eval_npz(npz(tmp_path / "eval.npz", x=np.zeros((2, 4), np.float32), y=np.array([0, 1])))
    assert x.shape == (2, 4) and y.dtype == np.int64


def test_evaluation_data_with_nan_or_inf_is_refused(tmp_path, user_model, capsys):
    """An accuracy over NaN inputs would be a number that means nothing."""
    from harness.app.cli import main

    x = user_model["x"][-50:].copy()
    x[0, 0, 0, 0], x[1, 0, 0, 0] = np.nan, np.inf
    data = npz(tmp_path / "nan.npz", x=x, y=user_model["y"][-50:])
    code = main(["bench", "--model", str(user_model["model"]), "--data", str(data), "--runs-dir",
                 str(tmp_path / "runs"), "--quiet", "--no-report"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert f"{data}: 'x' holds 2 NaN or infinite values" in err
