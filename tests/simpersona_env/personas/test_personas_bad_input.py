"""Bad input gives a clear error naming the value and the fix."""

from __future__ import annotations

import json

import polars as pl
import pytest

from simpersona_env.errors import CheckpointError, ConfigError, DataError, SchemaError


def test_too_few_buyers_for_k(synth_buyers, tiny_cfg, fast_train):
    import dataclasses

    from simpersona_env.personas.train import train_personas

    with pytest.raises(ConfigError, match=r"too few for k=16.*lower k"):
        train_personas(synth_buyers.head(40), dataclasses.replace(tiny_cfg, k=16), fast_train)


def test_k_below_two(synth_buyers, tiny_cfg, fast_train):
    import dataclasses

    from simpersona_env.personas.train import train_personas

    with pytest.raises(ConfigError, match="k >= 2"):
        train_personas(synth_buyers, dataclasses.replace(tiny_cfg, k=1), fast_train)


def test_buyer_table_of_another_schema_version(synth_buyers, tmp_path):
    from simpersona_env.buyers import write_buyers
    from simpersona_env.personas.data import load_buyers

    write_buyers(synth_buyers, tmp_path / "buyers")
    mf = tmp_path / "buyers" / "manifest.json"
    doc = json.loads(mf.read_text())
    doc["schema_version"] = 999
    mf.write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match="schema_version 999"):
        load_buyers(tmp_path)


def test_buyer_table_missing_columns(synth_buyers, trained):
    with pytest.raises(SchemaError, match=r"lacks column\(s\) \['search_share'\].*rebuild"):
        trained.assign(synth_buyers.drop("search_share"))


def test_nan_features(synth_buyers, trained, tiny_cfg, fast_train):
    from simpersona_env.personas.train import train_personas

    df = synth_buyers.with_columns(
        pl.when(pl.int_range(pl.len()) < 3).then(float("nan")).otherwise(pl.col("price_level"))
        .alias("price_level"))
    with pytest.raises(DataError, match=r"NaN.*'price_level': 3.*fill_nan"):
        trained.assign(df)
    with pytest.raises(DataError, match="NaN"):
        train_personas(df, tiny_cfg, fast_train)


def test_checkpoint_of_another_k(trained, tmp_path):
    from simpersona_env.personas.assign import load_checkpoint

    trained.save(tmp_path)
    with pytest.raises(CheckpointError, match=r"k=4 buyer types but k=16.*pass k=4"):
        load_checkpoint(tmp_path, expect_k=16)


def test_checkpoint_of_another_feature_set(trained, tmp_path):
    from simpersona_env.personas.assign import load_checkpoint

    trained.save(tmp_path)
    cfg = tmp_path / "personas.json"
    doc = json.loads(cfg.read_text())
    doc["feature_names"] = doc["feature_names"][:-1] + ["dwell_time"]
    cfg.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="dwell_time.*retrain"):
        load_checkpoint(tmp_path)


def test_checkpoint_weights_from_another_run(trained, tmp_path):
    """A config from one run beside the weights of a model with another K."""
    import dataclasses

    from simpersona_env.personas.assign import PersonaModel, load_checkpoint
    from simpersona_env.personas.model import PersonaVQVAE

    trained.save(tmp_path / "a")
    other = PersonaModel(PersonaVQVAE(dataclasses.replace(trained.model.cfg, k=6)),
                         trained.scaler)
    other.save(tmp_path / "b")
    (tmp_path / "a" / "personas.safetensors").write_bytes(
        (tmp_path / "b" / "personas.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(tmp_path / "a")


def test_missing_checkpoint(tmp_path):
    from simpersona_env.personas.assign import load_checkpoint

    with pytest.raises(CheckpointError, match="personas train"):
        load_checkpoint(tmp_path / "nothing")


def test_no_buyer_table_found(tmp_path):
    from simpersona_env.personas.data import load_buyers

    with pytest.raises(DataError, match="data=synthetic"):
        load_buyers(tmp_path)


def test_checkpoint_of_an_older_format(trained, tmp_path):
    from simpersona_env.personas.assign import load_checkpoint

    trained.save(tmp_path)
    cfg = tmp_path / "personas.json"
    doc = json.loads(cfg.read_text())
    doc["format"] = 1  # the layout before the funnel-aware latent
    cfg.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"format 2 \(it says format 1.*retrain"):
        load_checkpoint(tmp_path)


def test_unknown_funnel_outcome_and_no_room_for_it(tiny_cfg):
    import dataclasses

    from simpersona_env.errors import UnknownNameError
    from simpersona_env.personas.model import PersonaVQVAE

    with pytest.raises(UnknownNameError, match=r"'has_order'.*has_purchase"):
        PersonaVQVAE(dataclasses.replace(tiny_cfg, funnel_outcomes={"has_order": 2.0}))
    with pytest.raises(ConfigError, match=r"has_cart=0.0.*> 0"):
        PersonaVQVAE(dataclasses.replace(tiny_cfg, funnel_outcomes={"has_cart": 0.0}))
    three = {"has_cart": 1.0, "has_purchase": 2.0, "bounced": 1.0}
    with pytest.raises(ConfigError, match=r"latent_dim=3 leaves no room.*latent_dim > 3"):
        PersonaVQVAE(dataclasses.replace(tiny_cfg, latent_dim=3, funnel_outcomes=three))
