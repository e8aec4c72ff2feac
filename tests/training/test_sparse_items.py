"""Sparse item gradients (sparse_items.py): taken only for sampled losses on large catalogues;
they follow dense Adam(W) when every row is touched, decay and move only the rows a step
touches, honour optim.item_lr (0 freezes), clip like torch, resume exactly and all-reduce
under DDP on the CPU."""

import socket

import pytest
import torch
from planted import planted_corpus, tiny_settings
from safetensors.torch import load_file

from bert4rec.data.batches import cloze_mask
from bert4rec.rundir import load_checkpoint
from bert4rec.training import sparse_items
from bert4rec.training.loop import TrainingRun, fit
from bert4rec.training.runtime import Runtime
from bert4rec.training.sparse_items import LazyAdam, OptimizerPair, clip_gradients

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus():
    return planted_corpus(n_users=200)


@pytest.fixture
def sparse_from(monkeypatch):
    """Set the catalogue size from which the item table trains with sparse gradients."""
    return lambda n: monkeypatch.setattr(sparse_items, "SPARSE_ITEMS_FROM", n)


def test_sparse_gradients_are_for_sampled_losses_on_large_catalogues_on_cpu_or_one_gpu():
    large = sparse_items.SPARSE_ITEMS_FROM
    assert sparse_items.sparse_items("uniform", large, CPU, 1)
    assert sparse_items.sparse_items("in-batch", large, CPU, 2)  # gloo all-reduces them
    assert not sparse_items.sparse_items("uniform", large - 1, CPU, 1)
    assert not sparse_items.sparse_items("full", large, CPU, 1)
    assert sparse_items.sparse_items("uniform", large, torch.device("cuda", 0), 1)
    assert not sparse_items.sparse_items("uniform", large, torch.device("cuda", 0), 2)  # nccl
    assert not sparse_items.sparse_items("uniform", large, torch.device("mps"), 1)


def train_steps(corpus, settings, steps: int) -> tuple[TrainingRun, list[float]]:
    """`steps` optimiser steps on the same seeded cloze batches, the losses they gave."""
    run = TrainingRun(corpus, settings, Runtime(CPU), show_progress=False)
    generator = torch.Generator().manual_seed(1)
    sequences = torch.from_numpy(corpus.items_flat[:16 * 8].reshape(16, 8).copy())
    losses = []
    for _ in range(steps):
        inputs, labels = cloze_mask(sequences, settings.masking, corpus.mask_token, generator)
        losses.append(run.step(inputs, labels).item())
    return run, losses


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_with_every_row_touched_each_step_sparse_gradients_follow_dense_adam(
        corpus, sparse_from, optimizer):
    # 2,000 uniform negatives over 40 items touch every row at every step, where lazy Adam
    # and Adam agree; weight decay, clipping and item_lr all take part
    settings = tiny_settings(**{"optim.loss": "uniform", "optim.negatives": 2000,
                                "optim.optimizer": optimizer, "optim.weight_decay": 0.01,
                                "optim.clip_norm": 0.5, "optim.item_lr": 0.5})
    sparse_from(10**9)
    dense, dense_losses = train_steps(corpus, settings, 6)
    sparse_from(1)
    sparse, sparse_losses = train_steps(corpus, settings, 6)
    assert isinstance(sparse.optimizer, OptimizerPair) and not isinstance(
        dense.optimizer, OptimizerPair)
    assert sparse.model.encoder.embeddings.item.weight.grad.is_sparse
    assert sparse_losses == pytest.approx(dense_losses, rel=1e-4)
    assert dense_losses[-1] < dense_losses[0]
    start = TrainingRun(corpus, settings, Runtime(CPU), show_progress=False)
    items = [run.model.encoder.embeddings.item.weight for run in (start, dense, sparse)]
    assert (items[1] - items[0]).abs().max() > 1e-3, "six steps should move the items"
    # SparseAdam adds eps before its bias correction (Adam after), the one difference left:
    # with eps near zero both give the same table to 1e-7
    assert (items[2] - items[1]).abs().max() < 0.1 * (items[1] - items[0]).abs().max()
    assert torch.allclose(dense.model.output_bias, sparse.model.output_bias, atol=1e-5)


def test_item_lr_zero_keeps_the_table_where_it_started_on_the_sparse_path(corpus, sparse_from):
    sparse_from(1)
    settings = tiny_settings(**{"optim.loss": "in-batch", "optim.item_lr": 0.0})
    start = TrainingRun(corpus, settings, Runtime(CPU), show_progress=False)
    run, _ = train_steps(corpus, settings, 3)
    items = run.model.encoder.embeddings.item.weight
    assert torch.equal(items, start.model.encoder.embeddings.item.weight)
    assert not isinstance(run.optimizer, OptimizerPair)


@pytest.mark.parametrize("decoupled", [False, True])
def test_lazy_adam_decays_only_the_rows_a_step_touches(decoupled):
    table = torch.nn.Embedding(5, 3, sparse=True)
    table.weight.data.copy_(torch.linspace(0.5, 2.0, 15).view(5, 3))
    start = table.weight.detach().clone()
    optimizer = LazyAdam([{"params": [table.weight], "weight_decay": 0.1}], lr=0.01,
                         betas=(0.9, 0.999), decoupled=decoupled)
    for _ in range(3):
        optimizer.zero_grad()
        (table(torch.tensor([1, 3, 1])) * 0).sum().backward()  # touched, gradient zero
        optimizer.step()
    weight = table.weight.detach()
    untouched = [0, 2, 4]
    assert torch.equal(weight[untouched], start[untouched])
    if decoupled:  # AdamW: shrunk by lr * decay each step, and Adam's own step is zero
        assert torch.allclose(weight[[1, 3]], start[[1, 3]] * (1 - 0.01 * 0.1) ** 3)
    else:  # Adam's L2: the decay is the gradient, so each Adam step takes lr off each weight
        assert torch.allclose(weight[[1, 3]], start[[1, 3]] - 3 * 0.01, atol=1e-4)


def test_clipping_sparse_gradients_scales_them_like_their_dense_twins():
    dense, sparse = torch.nn.Embedding(6, 2), torch.nn.Embedding(6, 2, sparse=True)
    sparse.weight.data.copy_(dense.weight.data)
    for table in (dense, sparse):
        (table(torch.tensor([0, 2, 2, 5])) * 10).sum().backward()
    torch_norm = torch.nn.utils.clip_grad_norm_(dense.parameters(), 1.0)
    norm = clip_gradients(sparse.parameters(), 1.0)
    assert norm.item() == pytest.approx(torch_norm.item())
    assert torch.allclose(sparse.weight.grad.to_dense(), dense.weight.grad)


def test_a_dense_optimiser_state_is_refused_by_the_sparse_pair(corpus, sparse_from):
    settings = tiny_settings(**{"optim.loss": "uniform"})
    dense = TrainingRun(corpus, settings, Runtime(CPU), show_progress=False)
    sparse_from(1)
    sparse = TrainingRun(corpus, settings, Runtime(CPU), show_progress=False)
    with pytest.raises(ValueError, match="dense item table"):
        sparse.optimizer.load_state_dict(dense.optimizer.state_dict())


@pytest.mark.slow
def test_sparse_items_learn_the_planted_pattern_and_resume_exactly(corpus, sparse_from,
                                                                    tmp_path):
    sparse_from(1)
    settings = tiny_settings(epochs=6, **{"optim.loss": "in-batch"})
    whole = fit(corpus, settings, tmp_path / "whole", progress=False)
    assert whole.valid["HR@10"] > 0.8  # popularity is near 0.25 here
    fit(corpus, settings, tmp_path / "split", stop_after_epoch=2, progress=False)
    resumed = fit(corpus, settings, tmp_path / "split", resume=True, progress=False)
    assert resumed.history == whole.history and resumed.test == whole.test


def sparse_ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """One process of a CPU DDP run (gloo) with sparse item gradients; saves its final weights
    as rank<N>.safetensors."""
    import os
    from pathlib import Path

    from safetensors.torch import save_file

    torch.set_num_threads(1)
    sparse_items.SPARSE_ITEMS_FROM = 1
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    settings = tiny_settings(epochs=2, **{"optim.loss": "in-batch"})
    result = fit(planted_corpus(n_users=200), settings, out_dir, progress=False)
    state = {k: v.contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, str(Path(out_dir).parent / f"rank{rank}.safetensors"))


@pytest.mark.slow
def test_two_process_ddp_on_cpu_all_reduces_sparse_item_gradients(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(sparse_ddp_worker, args=(2, port, str(tmp_path / "run")),
                                nprocs=2)
    rank0, rank1 = (load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    optimizer = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["optimizer"]
    assert set(optimizer) == {"dense", "items"}, "the run took the sparse path"
