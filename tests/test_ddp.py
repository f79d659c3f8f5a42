"""DistributedDataParallel on CPU: two processes under torchrun with the gloo backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.model_factory import TINY_MODEL, write_tiny_dataset


@pytest.mark.slow  # two torch processes: ~9 s on a quiet 2-core machine, ~45 s on a busy one
def test_torchrun_two_cpu_processes(tmp_path):
    import torch

    ds = write_tiny_dataset(tmp_path / "ds")
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "napari_ultramn",
        "train",
        str(ds),
        "--out",
        str(run),
        "--epochs",
        "2",
        "--window",
        "8",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--model-kwargs",
        json.dumps(TINY_MODEL),
        "-q",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two ranks on a shared 2-core machine
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("2 epochs") == 1  # only rank 0 reports
    info = json.loads((run / "run.json").read_text())
    assert info["args"]["world_size"] == 2
    events = [json.loads(line)["event"] for line in (run / "progress.jsonl").read_text().splitlines()]
    assert events.count("start") == 1 and events.count("epoch") == 2 and events[-1] == "end"
    ckpt = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 1 and not any(k.startswith("module.") for k in ckpt["model_state"])
    # train windows are 8 (4 clips x 2); 2 ranks x batch 2 -> 2 steps per epoch on each rank
    assert ckpt["step"] == 4
