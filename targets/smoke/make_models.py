"""Writes the two tiny models the agent's smoke tests run (y = x + 1 on a float32 vector of 4):
add.onnx (onnx.helper) and add.tflite (litert-torch). Kept in git; run again only to regenerate.

    .venv/bin/python targets/smoke/make_models.py
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    import onnx
    import torch
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])], "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    (HERE / "add.onnx").write_bytes(model.SerializeToString())

    import litert_torch

    class Add(torch.nn.Module):
        def forward(self, x):
            return x + 1.0

    litert_torch.convert(Add().eval(), (torch.zeros(1, 4),)).export(str(HERE / "add.tflite"))


if __name__ == "__main__":
    main()
