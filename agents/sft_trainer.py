"""TRL's ``SFTTrainer`` with the loss scored on the completion tokens only, on every device.

An agent's training example is a long prompt (the page, the history, the persona) and a short
completion (the action, ~7 tokens of ~180). With ``completion_only_loss=True`` only those
tokens carry a loss, but off Triton devices TRL's fused LM head still projects *every*
position onto the vocabulary (and takes its log-softmax, entropy and arg-max) and then masks
all but a few: on the demo's CPU SFT that is half of each step's time. This trainer runs the
backbone, keeps the hidden states of the labelled positions, and projects only those: the same
loss, the same ``entropy`` and ``mean_token_accuracy`` metrics, about twice the steps per
second (``bench/bench_sft.py``).

It falls back to TRL's own loss wherever this shortcut would not be the same computation: a
model whose logits are scaled or soft-capped, DFT, label smoothing, a custom loss, router
auxiliary losses, pre-shifted labels (context parallelism), a model wrapped for distributed
training or by PEFT, and when the caller asks for the outputs.
"""

from __future__ import annotations

from typing import Any

import torch
from trl import SFTTrainer

__all__ = ["CompletionSFTTrainer", "completion_loss_applies"]

# text-config fields that change the logits beyond ``lm_head(hidden)``: TRL's fused head
# applies them, this trainer leaves such models to it
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier",
                     "lm_head_multiplier", "logits_scaling")


def completion_loss_applies(model: Any) -> bool:
    """Whether the model's logits are exactly ``lm_head(last hidden state)``."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return (model.get_output_embeddings() is not None
            and all(getattr(config, name, None) is None for name in _LOGIT_TRANSFORMS))


class CompletionSFTTrainer(SFTTrainer):
    """``SFTTrainer`` whose loss projects only the labelled positions onto the vocabulary."""

    def _completion_only_ok(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> bool:
        args = self.args
        return (not return_outputs
                and getattr(args, "loss_type", "nll") in ("nll", "chunked_nll")
                and getattr(self, "label_smoother", None) is None
                and getattr(self, "compute_loss_func", None) is None
                and not getattr(self, "aux_loss_enabled", False)
                and "labels" in inputs and "shift_labels" not in inputs
                and self.accelerator.unwrap_model(model) is model
                and not hasattr(model, "peft_config")  # a PEFT wrapper: its base_model is no backbone
                and getattr(model, "base_model", model) is not model  # a backbone to run alone
                and completion_loss_applies(model))

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if not self._completion_only_ok(model, inputs, return_outputs):
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        labels = inputs["labels"]
        model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        model_inputs["use_cache"] = False
        hidden = model.base_model(**model_inputs).last_hidden_state[:, :-1]
        target = labels[:, 1:].to(hidden.device)
        mask = target != -100
        head = model.get_output_embeddings()
        logits = head(hidden[mask]).float()  # (labelled positions, vocabulary)
        log_probs = logits.log_softmax(-1)
        tokens = target[mask]
        token_log_probs = log_probs.gather(1, tokens[:, None]).squeeze(1)
        n = mask.sum() if num_items_in_batch is None else num_items_in_batch
        # a batch with no labelled token reduces to a differentiable zero, as in TRL
        loss = -token_log_probs.sum() / torch.as_tensor(n, device=logits.device).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        self._log_metrics(mode, inputs, log_probs.detach(), logits.detach(), tokens)
        return loss

    def _log_metrics(self, mode: str, inputs: dict[str, Any], log_probs: torch.Tensor,
                     logits: torch.Tensor, tokens: torch.Tensor) -> None:
        """TRL's ``entropy``, ``mean_token_accuracy`` and ``num_tokens``, over the same tokens."""
        metrics = getattr(self, "_metrics", None)
        if metrics is None:
            return
        gather = self.accelerator.gather_for_metrics
        num_valid = gather(torch.as_tensor(tokens.numel(), device=logits.device)).sum()
        entropy_sum = gather(-(log_probs.exp() * log_probs).sum()).sum()
        correct = gather((logits.argmax(-1) == tokens).sum()).sum()
        metrics[mode]["entropy"].append((entropy_sum / num_valid).item() if num_valid > 0 else 0.0)
        metrics[mode]["mean_token_accuracy"].append(
            (correct / num_valid).item() if num_valid > 0 else 0.0)
        if mode == "train" and "attention_mask" in inputs and hasattr(self, "_total_train_tokens"):
            self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item()
            metrics[mode]["num_tokens"] = [self._total_train_tokens]
