"""Helpers for the agents tests: real episodes in the env's observation format, tiny models.

Until the env's replay produces traces, these episodes are written by a scripted buyer over
pages rendered like the env's observations (``[id] role "label"`` lines); tests that need the
env record episodes by running it (test_policies_env.py).
"""

from __future__ import annotations

import random

from agents.traces import Episode, Step

PRODUCTS = ["mug-red", "mug-blue", "tee-black", "tee-white", "cap-green", "sock-pair"]


def page(url: str, title: str, elements: list[tuple[str, str, str]]) -> str:
    lines = [title, url] + [f'[{i}] {role} "{label}"' for i, role, label in elements]
    return "\n".join(lines)


def home_obs(persona: int, goal: str = "", error: str = "") -> dict:
    els = [("nav-home", "link", "Home"), ("nav-cart", "link", "Cart"),
           ("search-input", "textbox", "Search"), ("search-submit", "button", "Search")]
    els += [(f"product-{p}", "link", p.replace("-", " ").title()) for p in PRODUCTS]
    return {"text": page("/s/demo/", "Demo shop", els), "url": "/s/demo/", "goal": goal,
            "persona": persona, "last_action_error": error}


def product_obs(persona: int, pid: str, goal: str = "") -> dict:
    els = [("nav-home", "link", "Home"), ("nav-cart", "link", "Cart"),
           ("quantity", "textbox", "Quantity"), ("add-to-cart", "button", "Add to cart")]
    url = f"/s/demo/products/{pid}"
    return {"text": page(url, pid.replace("-", " ").title(), els), "url": url, "goal": goal,
            "persona": persona, "last_action_error": ""}


def make_episodes(n: int, n_personas: int = 3, seed: int = 0) -> list[Episode]:
    """Type 0 leaves at once; type 1 views one product then leaves; type 2 adds it to cart."""
    rng = random.Random(seed)
    eps = []
    for i in range(n):
        k = i % n_personas
        steps = [Step(home_obs(k), "stop" if k == 0 else f"click[product-{(pid := rng.choice(PRODUCTS))}]")]
        if k >= 1:
            steps.append(Step(product_obs(k, pid), "stop" if k == 1 else "click[add-to-cart]"))
        eps.append(Episode(persona=k, merchant_id="demo", goal="", steps=steps))
    return eps


TINY = {"vocab_size": 400, "hidden_size": 64, "num_layers": 2, "num_heads": 4,
        "intermediate_size": 128}


def tiny_tokenizer_and_model(n_personas: int = 3, tie: bool = True, episodes_=None):
    """A built-in tokenizer trained on the fixture episodes and a fresh tiny Llama."""
    from agents.model import AgentModelConfig, build_agent
    from agents.sft import build_examples

    ex = build_examples(episodes_ or make_episodes(30, n_personas))
    cfg = AgentModelConfig(**TINY, tie_embeddings=tie)
    return build_agent(cfg, n_personas, corpus=[e.prompt + e.completion for e in ex])


def one_thread_command(cfg) -> int:
    """A stand-in `simpersona` command that sets torch's threads for itself, as the type
    assignment does (tests of the demo's stage runner)."""
    import torch

    torch.set_num_threads(1)
    return 0
