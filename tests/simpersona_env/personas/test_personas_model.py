"""The VQ-VAE trains for real: losses fall and stay finite, codes are in range, dead codes are
re-seeded, assignment is deterministic and the checkpoint round-trips exactly."""

from __future__ import annotations

import copy
import math

import numpy as np
import polars as pl
import pytest

from simpersona_env.personas.train import LOSS_TERMS


def test_loss_falls_and_every_term_is_finite(trained):
    hist = trained.history
    assert {"pretrain", "vq"} == {h["phase"] for h in hist}
    for h in hist:
        for term in LOSS_TERMS:
            assert math.isfinite(h[term]), (term, h)
    assert hist[-1]["loss"] < hist[0]["loss"]
    recon = [h["features"] + h["sequence"] + h["outcomes"] for h in hist]
    assert recon[-1] < recon[0]
    vq = [h for h in hist if h["phase"] == "vq"]
    assert all(h["commitment"] > 0 for h in vq)  # quantization really ran


def test_parameters_changed_from_init(trained, tiny_cfg):
    import torch

    from simpersona_env.personas.model import PersonaVQVAE

    torch.manual_seed(0)
    fresh = PersonaVQVAE(tiny_cfg).state_dict()
    moved = [k for k, v in trained.model.state_dict().items()
             if v.dtype.is_floating_point and not torch.equal(v, fresh[k])]
    assert any(k.startswith(("conv.", "gru.")) for k in moved) and "embed.weight" in moved
    assert any("outcome_head" in k for k in moved)


def test_codes_in_range_and_all_used(trained, synth_buyers):
    types = trained.assign(synth_buyers)
    assert types.dtype == np.int64 and len(types) == synth_buyers.height
    assert types.min() >= 0 and types.max() < trained.k
    assert len(np.unique(types)) >= trained.k - 1  # no collapse, even for a tiny model


def test_assignment_is_deterministic_and_batch_independent(trained, synth_buyers):
    a = trained.assign(synth_buyers)
    b = trained.assign(synth_buyers, batch_size=37)
    perm = np.random.default_rng(0).permutation(synth_buyers.height)
    c = trained.assign(synth_buyers[perm])
    assert np.array_equal(a, b)
    assert np.array_equal(a[perm], c)


def test_dead_codes_get_replaced(trained, synth_buyers):
    import torch

    from simpersona_env.personas.data import to_arrays

    typer = copy.deepcopy(trained)
    model = typer.model
    cb = model.vq._codebook
    cb.decay = 0.5  # a fast EMA so that a few steps suffice (the default is 0.99)
    with torch.no_grad():  # push code 0 far away: no buyer is ever nearest to it
        cb.embed[0, 0] = 1e4
        cb.embed_avg[0, 0] = 1e4 * cb.cluster_size[0, 0]
    arr = to_arrays(synth_buyers, typer.scaler, model.cfg.max_len)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for step in range(15):
        idx = np.arange(step * 20, step * 20 + 64) % len(arr)
        out = model(torch.from_numpy(arr.tokens[idx].astype(np.int64)),
                    torch.from_numpy(arr.seq_len[idx]), torch.from_numpy(arr.features[idx]),
                    torch.from_numpy(arr.outcomes[idx]))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval()
    assert float(cb.embed[0, 0].abs().max()) < 100.0  # re-seeded from real latents
    assert 0 in set(typer.assign(synth_buyers).tolist())


def test_checkpoint_round_trips_exactly(trained, synth_buyers, tmp_path):
    import torch

    from simpersona_env.personas.assign import load_checkpoint

    trained.save(tmp_path / "ckpt")
    back = load_checkpoint(tmp_path / "ckpt", expect_k=trained.k)
    a, b = trained.model.state_dict(), back.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert back.scaler == trained.scaler and back.history == trained.history
    assert np.array_equal(back.assign(synth_buyers), trained.assign(synth_buyers))
    assert np.array_equal(back.codebook(), trained.codebook())
    # no pickle anywhere: the weights are safetensors, the rest JSON
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "personas.json", "personas.safetensors"]


def test_unseen_merchant_gets_types(trained, synth_buyers):
    other = synth_buyers.with_columns(pl.lit("never-seen-shop").alias("merchant_id"))
    assert np.array_equal(trained.assign(other), trained.assign(synth_buyers))


def test_training_is_seeded(synth_buyers, tiny_cfg, fast_train):
    import dataclasses

    from simpersona_env.personas.train import train_personas

    quick = dataclasses.replace(fast_train, epochs_pretrain=1, epochs=1)
    small = synth_buyers.head(250)
    a = train_personas(small, tiny_cfg, quick)
    b = train_personas(small, tiny_cfg, quick)
    assert np.array_equal(a.assign(small), b.assign(small))
    assert a.history == b.history


@pytest.mark.parametrize("bad_len", [0])
def test_zero_length_sequences_are_refused(synth_buyers, trained, bad_len):
    from simpersona_env.errors import DataError

    df = synth_buyers.with_columns(pl.lit(bad_len, dtype=pl.Int32).alias("seq_len"))
    with pytest.raises(DataError, match="seq_len"):
        trained.assign(df)


def test_funnel_dim_separates_converters(trained, synth_buyers):
    """The funnel-aware latent: its first dim is the encoder's prediction of conversion, so
    converters and non-converters sit on opposite sides of it (the types then split on it)."""
    z = trained.latents(synth_buyers)
    bought = synth_buyers["has_purchase"].to_numpy()
    assert next(iter(trained.model.cfg.funnel_outcomes)) == "has_purchase"
    assert 0 < bought.sum() < len(bought)
    assert ((z[:, 0] > 0) == bought).mean() >= 0.95
    scale = trained.model.cfg.funnel_outcomes["has_purchase"]
    assert np.abs(z[:, 0]).max() <= scale  # bounded: the other dims keep their say


def test_quantized_phase_moves_funnel_dims_only_by_their_supervision(trained, synth_buyers):
    """Neither the commitment nor the decoders' straight-through gradient reach the funnel
    dims once codes are in use (they would pull a buyer towards a code of the other outcome);
    during pre-training the decoders do shape them."""
    import dataclasses

    import torch

    from simpersona_env.personas.data import to_arrays

    typer = copy.deepcopy(trained)
    model = typer.model
    model.cfg = dataclasses.replace(model.cfg, w_funnel=0.0)  # drop the dims' own supervision
    arr = to_arrays(synth_buyers.head(64), typer.scaler, model.cfg.max_len)
    batch = (torch.from_numpy(arr.tokens.astype(np.int64)), torch.from_numpy(arr.seq_len),
             torch.from_numpy(arr.features), torch.from_numpy(arr.outcomes))
    model.train()
    for quantize, moved in ((True, False), (False, True)):
        model.zero_grad(set_to_none=True)
        model(*batch, quantize=quantize).loss.backward()
        grads = [p.grad for p in model.to_funnel.parameters()]
        assert any(g is not None and bool(g.abs().sum() > 0) for g in grads) == moved
        assert model.embed.weight.grad.abs().sum() > 0  # the rest of the encoder still learns
