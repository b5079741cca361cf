"""sync_normalizer: two gloo processes on CPU equal one process on the concatenated batch (loss and gradients)."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import focalkit

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

WORLD_SIZE = 2


def _batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2 * 6, 4, 3, generator=g, dtype=torch.float64)
    t = torch.randint(0, 5, (2 * 6, 3), generator=g)
    t[1, 0] = -100
    t[8, 2] = -100
    return x, t


def _losses(x, t, sync):
    num_pos = ((t >= 0) & (t < 4)).sum()
    return {
        "sigmoid_normalized": focalkit.sigmoid_focal_loss(x, t, 0.25, 2.0, "mean", normalizer=num_pos, sync_normalizer=sync),
        "sigmoid_mean": focalkit.sigmoid_focal_loss(x, t, 0.25, 2.0, "mean", sync_normalizer=sync),
        "softmax_mean": focalkit.softmax_focal_loss(
            x, t.clamp(max=3).masked_fill(t == -100, -100), torch.tensor([1.0, 2.0, 0.5, 1.0], dtype=torch.float64),
            gamma=2.0, sync_normalizer=sync,
        ),
    }


def _worker(rank, port, queue):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        x, t = _batch()
        rows = slice(rank * 6, (rank + 1) * 6)
        x_local = x[rows].clone().requires_grad_(True)
        results = {}
        for name, loss in _losses(x_local, t[rows], sync=True).items():
            (grad,) = torch.autograd.grad(loss, x_local)
            # What DDP does: average the loss for logging and the gradients over the processes.
            loss_avg = loss.detach().clone()
            dist.all_reduce(loss_avg)
            loss_avg /= WORLD_SIZE
            full_grad = torch.zeros_like(x)
            full_grad[rows] = grad
            dist.all_reduce(full_grad)
            full_grad /= WORLD_SIZE
            results[name] = (loss_avg.tolist(), full_grad.tolist())  # plain lists: no shared-memory handles
        queue.put((rank, results))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_equal_one_process_on_concatenated_batch():
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(rank, port, queue)) for rank in range(WORLD_SIZE)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    x, t = _batch()
    x = x.requires_grad_(True)
    for name, loss in _losses(x, t, sync=False).items():
        (grad,) = torch.autograd.grad(loss, x)
        for rank in range(WORLD_SIZE):
            loss_avg, full_grad = results[rank][name]
            torch.testing.assert_close(torch.tensor(loss_avg, dtype=torch.float64), loss.detach(), msg=f"{name}: loss differs")
            torch.testing.assert_close(torch.tensor(full_grad, dtype=torch.float64), grad, msg=f"{name}: gradient differs")
