"""The benchmark code itself: the GPU training benchmark's core runs on CPU with tiny sizes, counts
forward+backward FLOPs, and `run.py --gpu` fails with one clear line where CUDA is absent."""

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_training
import run
from cpu_inference import interleaved_best
from prlkit.config import FrodoConfig
from prlkit.models.frodo import FrodoNet, count_flops

TINY = dict(size=16, batch=4, steps=2, warmup=1, cache_lesions=8, model_config=run.TINY_FRODO)


def test_train_throughput_counts_forward_and_backward_flops():
    row = gpu_training.train_throughput("frodo", torch.device("cpu"), **TINY)
    forward = count_flops(FrodoNet(FrodoConfig(**run.TINY_FRODO)), (1, 3, 16, 16, 16))
    # backward costs about twice the forward (input and weight gradients; none for the patches themselves)
    assert 2.0 * forward < row["gflop_per_sample"] * 1e9 <= 3.0 * forward
    assert row["samples_per_s"] == pytest.approx(4 / row["seconds_per_step"])
    assert row["fraction_of_bf16_peak"] is None  # no peak is known for a CPU


@pytest.mark.parametrize("variant", [gpu_training.Variant(bf16=True, channels_last=True),
                                     gpu_training.Variant(cache_on_device=False)])
def test_train_throughput_variants_run(variant):
    row = gpu_training.train_throughput("frodo", torch.device("cpu"), variant, **TINY)
    assert row["bf16"] == variant.bf16 and row["cache_on_device"] == variant.cache_on_device
    assert row["gflop_per_sample"] > 0 and row["samples_per_s"] > 0


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


def test_cpu_table_formats_every_measurement(monkeypatch, tmp_path):
    """The table code against the real result layouts (tiny stand-ins for the slow measurements)."""
    import cpu_inference
    import patch_extraction

    extraction = {"sessions": 2, "lesions": 9, "patches": 7, "patch": 16, "profile": "paper", "uncached_s": 1.0,
                  "cached_s": 0.1}
    monkeypatch.setattr(patch_extraction, "measure", lambda *a: extraction)
    monkeypatch.setattr(cpu_inference, "BATCHES", (2,))
    monkeypatch.setattr(cpu_inference, "trained_like", lambda profile: FrodoNet(FrodoConfig(**run.TINY_FRODO)).eval())
    tiny_profile = SimpleNamespace(patches=SimpleNamespace(size=32))  # the smallest size with 2^3 deep maps
    monkeypatch.setattr(cpu_inference, "get_profile", lambda profile: tiny_profile)
    session = {"lesions": 3,
               **dict.fromkeys(("before_s", "total_s", "network_s", "network_before_s", "other_s", "read_s"), 1.0)}
    monkeypatch.setattr(cpu_inference, "end_to_end", lambda *a: {"models": 5, "sessions": [session],
                                                                 **{f"mean_{k}": v for k, v in session.items()}})
    args = run.argparse.Namespace(cohort=tmp_path, subjects=2, repeats=1, model=tmp_path, patients=1)
    report, rows = run.cpu_rows(args)
    assert len(report["network"]) == 2 and len(rows) == 2 + 2 + 3
    assert all(isinstance(name, str) and isinstance(value, str) for name, value in rows)
