"""The one way the distributed tests start processes: `torchrun` (``python -m torch.distributed.run``) on CPU with
gloo, one thread per process, the repository on ``PYTHONPATH``, each launch in a session of its own so that a hang
ends with all its workers, not only the launcher.

- `torchrun(args, nproc_per_node=2)`: one launch on this machine (``--standalone``);
- `torchrun_nodes(args, nnodes=2)`: ``nnodes`` launches, each a "node" of one process, meeting through a c10d
  rendezvous on localhost: what running on several machines does, with the machines' addresses replaced by
  localhost;
- `accelerate_launch(config, args)`: ``accelerate launch --config_file CONFIG`` (examples/accelerate/).

``args`` is what follows the launcher's options: a script and its arguments, or ``-m module ...``.
"""

import os
import signal
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 240


def script(name: str) -> str:
    """Path of a worker script in tests/distributed/."""
    return os.path.join(HERE, name)


def _environment() -> dict:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_VERBOSITY": "error",
    }


def _start(command: list[str], cwd: str | None) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        env=_environment(),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _remaining_output(process: subprocess.Popen) -> str:
    """What a killed launch wrote; a worker that outlived its launcher (torchrun starts each in a session of its own)
    may still hold the pipe open, so wait only a little."""
    try:
        return process.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        return "(output unavailable: a worker process still holds the pipe)"


def _finish(processes: list[subprocess.Popen], timeout: float) -> list[str]:
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=timeout)[0])
    except subprocess.TimeoutExpired:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        outputs = [_remaining_output(process) for process in processes]
        pytest.fail("torchrun timed out:\n" + "\n".join(output[-4000:] for output in outputs))
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-8000:]
    return outputs


def torchrun(args: list[str], nproc_per_node: int = 2, timeout: float = TIMEOUT, cwd: str | None = None) -> str:
    """Run ``torchrun --standalone --nproc_per_node N args...``; fails the test unless it exits 0. Its output."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc_per_node)]
    return _finish([_start(command + list(args), cwd)], timeout)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_nodes(args: list[str], nnodes: int = 2, timeout: float = TIMEOUT, cwd: str | None = None) -> list[str]:
    """``nnodes`` launches of ``torchrun --nnodes N --nproc_per_node 1 --rdzv_backend c10d --rdzv_endpoint
    localhost:PORT --rdzv_id ...`` (what each machine of a multi-node job runs); their outputs."""
    endpoint, run_id = f"localhost:{free_port()}", f"maskvision-test-{os.getpid()}"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc_per_node", "1",
        "--rdzv_backend", "c10d", "--rdzv_endpoint", endpoint, "--rdzv_id", run_id,
    ]  # fmt: skip
    return _finish([_start(command + list(args), cwd) for _ in range(nnodes)], timeout)


def accelerate_launch(config: str, args: list[str], timeout: float = TIMEOUT, cwd: str | None = None) -> str:
    """Run ``accelerate launch --config_file CONFIG --main_process_port PORT args...``; its output."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config,
               "--main_process_port", str(free_port())]  # fmt: skip
    return _finish([_start(command + list(args), cwd)], timeout)[0]


def assert_same_trajectory(summary: dict, weights_path: str, single, steps: int, row_sets: tuple = ()) -> None:
    """The distributed run (its ``summary["losses"]`` and final weights in ``weights_path``) against ``single``, the
    trainer of the one-process run with the same global batches: the same losses and weights up to the order of
    float sums (one batch of 2B against 2 x B and an all-reduce). Tensors named in ``row_sets`` (key queues) must hold
    the same rows in any order."""
    import torch
    from safetensors.torch import load_file

    reference = [entry["loss"] for entry in single.state.log_history if "loss" in entry]
    assert len(reference) == len(summary["losses"]) == steps
    assert reference[-1] != reference[0]  # the steps changed the model: a trajectory worth comparing
    assert summary["losses"] == pytest.approx(reference, rel=1e-4)
    distributed = load_file(weights_path)
    for name, value in single.model.state_dict().items():
        other = distributed[name]
        if name in row_sets:  # rows sorted by their values
            other, value = (torch.tensor(sorted(tensor.tolist())) for tensor in (other, value))
        torch.testing.assert_close(other, value, rtol=1e-4, atol=1e-5, msg=name)
