"""The benchmark code itself: the GPU training benchmark's core runs on CPU with tiny sizes, counts
forward+backward FLOPs, and `run.py --gpu` fails with one clear line where CUDA is absent."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_training  # noqa: E402
import run  # noqa: E402
from cpu_inference import interleaved_best  # noqa: E402

from prlkit.models.frodo import FrodoNet, count_flops  # noqa: E402
from prlkit.config import FrodoConfig  # noqa: E402

TINY = dict(size=16, batch=4, steps=2, warmup=1, cache_lesions=8, model_config=run.TINY_FRODO)


def test_train_throughput_counts_forward_and_backward_flops():
    row = gpu_training.train_throughput("frodo", torch.device("cpu"), **TINY)
    forward = count_flops(FrodoNet(FrodoConfig(**run.TINY_FRODO)), (1, 3, 16, 16, 16))
    # backward costs about twice the forward (input and weight gradients; none for the patches themselves)
    assert 2.0 * forward < row["gflop_per_sample"] * 1e9 <= 3.0 * forward
    assert row["samples_per_s"] == pytest.approx(4 / row["seconds_per_step"])
    assert row["fraction_of_bf16_peak"] is None  # no peak is known for a CPU


@pytest.mark.parametrize("variant", [gpu_training.Variant(bf16=True, channels_last=True),
                                     gpu_training.Variant(cache_on_device=False)])  # fmt: skip
def test_train_throughput_variants_run(variant):
    row = gpu_training.train_throughput("frodo", torch.device("cpu"), variant, **TINY)
    assert row["bf16"] == variant.bf16 and row["cache_on_device"] == variant.cache_on_device
    assert row["gflop_per_sample"] > 0 and row["samples_per_s"] > 0


def test_methods_map_to_their_networks():
    assert type(gpu_training.build_method_network("resnet18")).__name__ == "ResNet18Baseline"
    assert isinstance(gpu_training.build_method_network("frodo_scratch", run.TINY_FRODO), FrodoNet)


def test_ladder_ratios_are_relative_to_fp32_and_to_the_step_before(monkeypatch):
    speeds = iter([10.0, 20.0, 30.0])
    monkeypatch.setattr(gpu_training, "train_throughput", lambda *a, **k: {"samples_per_s": next(speeds)})
    rows = gpu_training.optimisation_ladder("frodo", torch.device("cpu"), dict(list(gpu_training.LADDER.items())[:3]))
    assert [r["vs_fp32"] for r in rows] == [1.0, 2.0, 3.0]
    assert [r["vs_previous"] for r in rows] == [1.0, 2.0, 1.5]


def test_gpu_benchmark_without_cuda_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["run.py", "--gpu", "--json", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit) as exit_info:
        run.main()
    message = str(exit_info.value.code)
    assert "no CUDA device" in message and "\n" not in message
    assert not (tmp_path / "x.json").exists()


def test_interleaved_best_takes_each_steps_minimum():
    calls = {"a": 0, "b": 0}

    def step(name):
        calls[name] += 1

    best = interleaved_best({"a": lambda: step("a"), "b": lambda: step("b")}, repeats=3)
    assert calls == {"a": 4, "b": 4} and set(best) == {"a", "b"} and all(t >= 0 for t in best.values())
