"""Mixed precision, torch.compile and its fallback, and the NaN guard that reads the device
only every few steps: real training runs on the CPU."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import cnnspec
from cnnspec.training.callbacks import Callback, TrainingError
from conftest import SPECS


class Dtypes(Callback):
    """Records the dtype of the first convolution's output during training steps."""

    def __init__(self):
        self.seen = set()

    def on_train_start(self, trainer):
        conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
        conv.register_forward_hook(lambda m, i, o: self.seen.add(o.dtype) if m.training else None)


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16),
                                              ("fp32", torch.float32)])
def test_precision_runs_the_forward_pass_in_that_dtype_and_is_recorded(tmp_path, precision,
                                                                        dtype):
    spec = cnnspec.load(SPECS / "lenet5.cnn")
    probe = Dtypes()
    run = cnnspec.train(spec, out=tmp_path / "run", epochs=1, export=False, callbacks=[probe],
                        overrides={"precision": precision})
    assert probe.seen == {dtype}
    assert run.final["val_accuracy"] > 0.8  # LeNet-5 after one epoch on 4,000 digits: ~86%
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (info["precision"], info["grad_scaler"]) == (precision, precision == "fp16")
    assert all(v.dtype == torch.float32 for v in run.model.state_dict().values())
    state = torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)
    # fp16's gradient scaler is checkpointed (its scale grows after 2,000 clean steps)
    assert (state["scaler"].get("scale") == 65536.0) == (precision == "fp16")


def test_fp16_resume_restores_the_gradient_scaler(tmp_path):
    spec = cnnspec.load(SPECS / "lenet5.cnn")
    cnnspec.train(spec, out=tmp_path / "run", epochs=1, export=False,
                  overrides={"precision": "fp16"})
    ckpt = tmp_path / "run" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)
    state["scaler"]["scale"] = 1024.0  # as if it had backed off after overflows
    torch.save(state, ckpt)

    class Scale(Callback):
        def on_train_start(self, trainer):
            self.scale = trainer.speed.scaler.get_scale()

    probe = Scale()
    from cnnspec.training import resume

    resume(tmp_path / "run", epochs=2, export=False, callbacks=[probe])
    assert probe.scale == 1024.0


def test_nan_guard_stops_within_ten_steps_and_names_the_first_bad_step(tmp_path):
    class Poison(Callback):
        """Turns the weights to NaN after step 4 (1-based), so step 5's loss is NaN."""

        last = None

        def on_step_end(self, trainer, step, loss):
            self.last = step
            if step == 3:
                with torch.no_grad():
                    next(trainer.model.parameters()).fill_(float("nan"))

    poison = Poison()
    spec = cnnspec.load(SPECS / "lenet5.cnn")
    with pytest.raises(TrainingError, match=r"the loss became nan at epoch 1, step 5 "
                       r"\(learning rate 0.1\); training stopped"):
        cnnspec.train(spec, out=tmp_path / "run", epochs=1, export=False, callbacks=[poison])
    assert poison.last == 8  # the guard (first in line) read the device at step 10 (0-based 9)
    info_written = (tmp_path / "run").exists()
    assert not info_written  # stopped before its first checkpoint: no folder left


@pytest.mark.slow
def test_compile_on_trains_compiled_and_matches_eager(tmp_path):
    spec = cnnspec.load(SPECS / "lenet5.cnn")
    eager = cnnspec.train(spec, out=tmp_path / "eager", epochs=1, export=False)
    compiled = cnnspec.train(spec, out=tmp_path / "compiled", epochs=1, export=False,
                             overrides={"compile": True})
    assert json.loads((tmp_path / "compiled" / "run.json").read_text())["compile"] == "compiled"
    assert compiled.final["train_loss"] == pytest.approx(eager.final["train_loss"], rel=1e-3)


def test_compile_falls_back_to_eager_with_one_line_where_it_cannot_run(tmp_path):
    """Inductor needs a C++ compiler on the CPU; with none, the run says so and goes on."""
    r = subprocess.run(
        [sys.executable, "-m", "cnnspec", "compile", str(SPECS / "lenet5.cnn"), "--train",
         "--epochs", "1", "--compile", "--out", str(tmp_path / "run")],
        check=False, capture_output=True, text=True, timeout=300,
        env={**os.environ, "CXX": str(tmp_path / "no-such-compiler"), "COLUMNS": "300"})
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("compile:")]
    assert len(lines) == 1 and "InvalidCxxCompiler" in lines[0] and "eager mode" in lines[0]
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["compile"].startswith("off: InductorError: InvalidCxxCompiler")
    assert "val accuracy" in r.stdout


def test_onnx_runtime_sessions_enable_every_graph_optimisation(tmp_path):
    import onnxruntime as ort

    from cnnspec.export import export_onnx, session

    spec = cnnspec.load(SPECS / "lenet5.cnn")
    model = cnnspec.build(spec).eval()
    export_onnx(model, spec, tmp_path / "m.onnx")
    sess = session(tmp_path / "m.onnx", threads=3)
    options = sess.get_session_options()
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.intra_op_num_threads == 3
    assert sess.get_providers()[0] == ("CUDAExecutionProvider" if torch.cuda.is_available()
                                       else "CPUExecutionProvider")
    x = torch.rand(2, 1, 32, 32)
    got = sess.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_gpu_benchmark_dry_run_on_the_cpu():
    """benchmarks/gpu.py --dry-run: the GPU benchmark's code at 32x32, batch 4, on the CPU."""
    r = subprocess.run([sys.executable, str(SPECS.parent / "benchmarks" / "gpu.py"), "--dry-run"],
                       check=False, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = re.findall(r"^(vgg16|resnet50) +(train|infer) .*? (\d+) +([\d,.]+) +([\d.]+) +"
                      r"(?:of peak|ORT/eager); (.*)$", r.stdout, flags=re.MULTILINE)
    assert [(n, w, int(b)) for n, w, b, *_ in rows] == [
        (n, w, b) for n in ("vgg16", "resnet50")
        for w, b in (("train", 4), ("train", 4), ("infer", 1), ("infer", 8))]
    assert [note for *_, note in rows if "compile" in note] == [
        "compile off", "compile compiled"] * 2  # compile ran, no fallback
    assert all(float(ips.replace(",", "")) > 0 and float(ratio) > 0
               for *_, ips, ratio, _ in rows)


def test_an_exploding_loss_stops_training_and_names_the_learning_rate(tmp_path):
    """lr 1e6 on LeNet-5: the loss stays finite but reaches millions within a few steps."""
    spec = cnnspec.load(SPECS / "lenet5.cnn")
    with pytest.raises(TrainingError, match=r"the loss exploded to .* at epoch 1, step \d+ "
                       r"\(learning rate 1e\+06\); a healthy start is about ln\(10\) = 2.30\. "
                       r".*Lower the learning rate \(try 100000\)"):
        cnnspec.train(spec, out=tmp_path / "run", epochs=1, export=False,
                      overrides={"lr": 1e6})


def test_mixed_precision_on_a_cpu_without_its_units_is_said_before_training(tmp_path):
    """Issue 29, finding 3: bf16 ran 13x slower than fp32 on an AVX2 CPU without a word."""
    from cnnspec.training.performance import cpu_precision_note

    avx2 = tmp_path / "avx2"
    avx2.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    amx = tmp_path / "amx"
    amx.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 "
                   "avx512_fp16\n")
    cpu = torch.device("cpu")
    note = cpu_precision_note("bf16", cpu, str(avx2))
    assert note.startswith("precision bf16 on this CPU: it has no bf16 units (no avx512_bf16 "
                           "or amx_bf16 among its features)")
    assert "avx512_fp16 or amx_fp16" in cpu_precision_note("fp16", cpu, str(avx2))
    assert cpu_precision_note("bf16", cpu, str(amx)) is None
    assert cpu_precision_note("fp16", cpu, str(amx)).startswith(  # slower even so: measured
        "precision fp16 on a CPU: PyTorch's float16 CPU kernels and the gradient scaler make "
        "training slower than fp32 even with avx512_fp16")
    assert cpu_precision_note("fp32", cpu, str(avx2)) is None
    assert cpu_precision_note("bf16", torch.device("cuda"), str(avx2)) is None
    assert cpu_precision_note("bf16", cpu, str(tmp_path / "missing")) is None


def test_fp16_steps_the_scaler_skips_are_counted_and_torchs_warning_is_not_shown(tmp_path):
    """Issue 29, finding 1: with inputs scaled up (std 0.01) the gradients overflow at the
    gradient scaler's first scales and it skips those optimizer steps. The schedule follows
    the batches, as the summary previews it (a choice, said in docs/distributed.md); the
    skipped steps are counted in the epoch line, metrics.json and run.json, and torch's
    "lr_scheduler.step() before optimizer.step()" warning is not shown."""
    import subprocess
    import sys

    spec = tmp_path / "t.cnn"
    spec.write_text("network T\ninput 28x28x1\nconv 3x3x8 relu\nflatten\ndense 10\ntrain:\n"
                    "    epochs 1\n    batch 400\n    precision fp16\n    workers 0\n"
                    "    optimizer sgd lr 0.00001\n    schedule cosine\n"
                    "    augment: normalize mean 0.5 std 0.01\n")
    r = subprocess.run([sys.executable, "-W", "default", "-m", "cnnspec", "compile", str(spec),
                        "--train", "--out", str(tmp_path / "run")], capture_output=True,
                       text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert "Detected call of" not in r.stderr and "UserWarning" not in r.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    skipped = metrics[0]["skipped_steps"]
    assert skipped >= 1
    assert f"| {skipped} step(s) skipped (fp16 overflow)" in r.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["skipped_steps"] == skipped
