"""Shared fixtures for the agents tests (helpers live in agent_helpers.py)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
from agent_helpers import make_episodes, tiny_tokenizer_and_model

from agents.traces import Episode


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """One intra-op thread: on the shared 2-core CI, two threads fighting other jobs made the
    tiny SFT run ~6x slower (91 s vs 15 s measured)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def episodes() -> list[Episode]:
    return make_episodes(60)


@pytest.fixture(scope="session")
def trained_agent(tmp_path_factory, episodes):
    """A tiny agent trained for real on the fixture episodes, saved as a checkpoint folder."""
    import torch

    from agents.model import AgentMeta, save_agent
    from agents.sft import SFTSettings, build_examples, split_episodes, train_sft

    torch.manual_seed(0)
    tok, model = tiny_tokenizer_and_model(3, episodes_=episodes)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    tr, ev = split_episodes(episodes, 0.2, seed=0)
    settings = SFTSettings(epochs=20, learning_rate=1e-2, batch_size=16, lr_scheduler="constant",
                           logging_steps=5, seed=0)
    out = tmp_path_factory.mktemp("agent")
    result = train_sft(tok, model, build_examples(tr), build_examples(ev), settings, out)
    save_agent(out, model, tok, AgentMeta(n_personas=3))
    return {"dir": out, "result": result, "before": before, "model": model, "tokenizer": tok}
