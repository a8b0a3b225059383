"""CompletionSFTTrainer: TRL's loss, gradients and metrics, computed on the labelled tokens only."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from agent_helpers import make_episodes, tiny_tokenizer_and_model


def _trainers(tmp_path, tie: bool = True, softcap: float | None = None):
    from trl import SFTConfig, SFTTrainer

    from agents.sft import build_examples, tokenize_examples
    from agents.sft_trainer import CompletionSFTTrainer

    episodes = make_episodes(40)
    torch.manual_seed(0)
    tok, model = tiny_tokenizer_and_model(3, tie=tie, episodes_=episodes)
    model.config.final_logit_softcapping = softcap  # TRL's fused head reads it at init
    ds = tokenize_examples(tok, build_examples(episodes), 256)
    args = SFTConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=8,
                     completion_only_loss=True, packing=False, report_to="none",
                     save_strategy="no", bf16=False, disable_tqdm=True, seed=0)
    ours, theirs = copy.deepcopy(model), copy.deepcopy(model)
    return (CompletionSFTTrainer(model=ours, args=args, train_dataset=ds, processing_class=tok),
            SFTTrainer(model=theirs, args=args, train_dataset=ds, processing_class=tok))


def _loss_and_grads(trainer, batch):
    model = trainer.model
    model.zero_grad()
    loss = trainer.compute_loss(model, dict(batch))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("tie", [True, False])
def test_loss_gradients_and_metrics_equal_trl(tmp_path, tie):
    ours, theirs = _trainers(tmp_path, tie=tie)
    batch = next(iter(theirs.get_train_dataloader()))
    # padded batch: prompts of different lengths, loss on a few action tokens per example
    assert (batch["labels"] != -100).sum() < (batch["attention_mask"] == 1).sum() / 3
    assert ours._completion_only_ok(ours.model, batch, return_outputs=False)  # the shortcut runs
    loss_a, grads_a = _loss_and_grads(ours, batch)
    loss_b, grads_b = _loss_and_grads(theirs, batch)
    assert loss_a.item() == pytest.approx(loss_b.item(), rel=1e-5)
    for name, g in grads_b.items():
        assert torch.allclose(grads_a[name], g, atol=1e-6, rtol=1e-4), name
    for key in ("entropy", "mean_token_accuracy", "num_tokens"):
        assert ours._metrics["train"][key] == pytest.approx(theirs._metrics["train"][key], rel=1e-5)


def test_falls_back_to_trl_where_the_shortcut_would_differ(tmp_path):
    """Soft-capped logits (Gemma-style) go to TRL's loss; a count of items divides alike."""
    from agents.sft_trainer import completion_loss_applies

    ours, theirs = _trainers(tmp_path, softcap=0.01)
    batch = next(iter(theirs.get_train_dataloader()))
    assert not completion_loss_applies(ours.model)
    capped_a, _ = _loss_and_grads(ours, batch)
    capped_b, _ = _loss_and_grads(theirs, batch)
    assert capped_a.item() == pytest.approx(capped_b.item(), rel=1e-6)
    vocab = ours.model.get_output_embeddings().weight.shape[0]
    assert capped_a.item() == pytest.approx(math.log(vocab), rel=1e-3)  # capped to ~uniform
    ours, theirs = _trainers(tmp_path)
    assert completion_loss_applies(ours.model)
    plain, _ = _loss_and_grads(ours, batch)
    assert plain.item() != pytest.approx(capped_a.item(), rel=3e-3)

    # num_items_in_batch (gradient accumulation) divides the summed loss the same way
    n = (batch["labels"][:, 1:] != -100).sum() * 3
    a = ours.compute_loss(ours.model, dict(batch), num_items_in_batch=n)
    b = theirs.compute_loss(theirs.model, dict(batch), num_items_in_batch=n)
    assert a.item() == pytest.approx(b.item(), rel=1e-5)
    assert a.item() == pytest.approx(plain.item() / 3, rel=1e-5)


def test_a_batch_without_labels_gives_a_differentiable_zero(tmp_path):
    ours, theirs = _trainers(tmp_path)
    batch = dict(next(iter(theirs.get_train_dataloader())))
    batch["labels"] = torch.full_like(batch["labels"], -100)
    loss = ours.compute_loss(ours.model, batch)
    loss.backward()
    assert loss.item() == 0.0
    assert ours._metrics["train"]["mean_token_accuracy"][-1] == 0.0
