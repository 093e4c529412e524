"""Tests of flavortag.models: interface, normalisation, invariances, layouts, pair features, learning."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from flavortag.batching import PaddedBatch, padded_to_ragged
from flavortag.models import (
    MODELS,
    PAIR_FEATURES,
    build_model,
    checkpoint_state,
    count_parameters,
    model_from_checkpoint,
    pair_features,
)
from flavortag.models.attention import key_padding_bias

F_TRACK, G_EVENT = 6, 4

SMALL = {
    "mlp": {"name": "mlp", "hidden_dims": [16], "dropout": 0.0},
    "deepsets": {
        "name": "deepsets", "phi_dims": [16, 16], "rho_dims": [16],
        "pooling": ["sum", "mean", "max", "attention"], "attention_heads": 2, "use_event_features": True,
    },
    "transformer": {
        "name": "transformer", "embed_dim": 16, "num_heads": 2, "depth": 2, "class_depth": 1,
        "embed_hidden": [16], "pair_hidden": [8], "dropout": 0.0, "use_event_features": True,
    },
    "transformer_nopair": {
        "name": "transformer", "embed_dim": 16, "num_heads": 2, "depth": 2, "class_depth": 1,
        "embed_hidden": [16], "dropout": 0.0, "use_pair_features": False,
    },
}
SET_MODELS = ["deepsets", "transformer", "transformer_nopair"]


def small_model(key: str, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(SMALL[key], F_TRACK, G_EVENT)
    # Non-trivial normalisation so that raw inputs really go through it.
    rng = np.random.default_rng(seed)
    model.fit_normalisation(rng.normal(3.0, 2.0, (500, F_TRACK)), rng.normal(-1.0, 0.5, (100, G_EVENT)))
    return model.eval()


def random_vectors(gen: torch.Generator, shape: tuple[int, int]) -> torch.Tensor:
    momentum = torch.randn(*shape, 3, generator=gen) * 5.0
    energy = (momentum.square().sum(-1) + 0.1396**2).sqrt()
    points = torch.randn(*shape, 3, generator=gen) * 0.2
    return torch.cat((energy[..., None], momentum, points), dim=-1)


def random_batch(counts: list[int], n_slots: int, seed: int = 0) -> PaddedBatch:
    """Padded batch with valid prefixes of the given lengths; padded slots hold zeros."""
    gen = torch.Generator().manual_seed(seed)
    batch_size = len(counts)
    valid = torch.arange(n_slots)[None, :] < torch.tensor(counts)[:, None]
    features = (torch.randn(batch_size, n_slots, F_TRACK, generator=gen) * 2.0 + 3.0) * valid[..., None]
    vectors = random_vectors(gen, (batch_size, n_slots)) * valid[..., None]
    return PaddedBatch(
        features=features,
        valid=valid,
        labels=torch.zeros(batch_size, dtype=torch.int64),
        event_features=torch.randn(batch_size, G_EVENT, generator=gen) * 0.5 - 1.0,
        vectors=vectors,
    )


def with_garbage_padding(batch: PaddedBatch, extra: int, seed: int = 1) -> PaddedBatch:
    """More slots; every padded slot (old and new) filled with huge numbers, NaN and inf."""
    gen = torch.Generator().manual_seed(seed)
    batch_size, n_slots, _ = batch.features.shape

    def pad(x: torch.Tensor) -> torch.Tensor:
        grown = torch.cat((x, torch.zeros(batch_size, extra, x.shape[-1])), dim=1)
        garbage = torch.randn(grown.shape, generator=gen) * 1e6
        garbage[:, ::3, 0] = float("nan")
        garbage[:, 1::3, -1] = float("inf")
        valid = torch.cat((batch.valid, torch.zeros(batch_size, extra, dtype=torch.bool)), dim=1)
        return torch.where(valid[..., None], grown, garbage)

    return PaddedBatch(
        features=pad(batch.features),
        valid=torch.cat((batch.valid, torch.zeros(batch_size, extra, dtype=torch.bool)), dim=1),
        labels=batch.labels,
        event_features=batch.event_features,
        vectors=pad(batch.vectors),
    )


def permuted(batch: PaddedBatch, seed: int = 2) -> PaddedBatch:
    """Shuffle the slots of every event with its own permutation (padding ends up interleaved)."""
    gen = torch.Generator().manual_seed(seed)
    batch_size, n_slots, _ = batch.features.shape
    order = torch.stack([torch.randperm(n_slots, generator=gen) for _ in range(batch_size)])

    def take(x: torch.Tensor) -> torch.Tensor:
        index = order if x.dim() == 2 else order[..., None].expand_as(x)
        return torch.gather(x, 1, index)

    return PaddedBatch(take(batch.features), take(batch.valid), batch.labels, batch.event_features,
                       take(batch.vectors))


# ---- construction ----------------------------------------------------------------------------
def test_default_models_parameter_counts():
    f, g = 16, 12
    mlp = build_model({"name": "mlp"}, f, g)
    assert count_parameters(mlp) == (g * 64 + 64) + (64 * 64 + 64) + (64 * 3 + 3)
    deepsets = build_model({"name": "deepsets"}, f, g)
    phi = (f * 64 + 64) + 2 * (64 * 64 + 64)
    rho = (128 * 64 + 64) + (64 * 64 + 64) + (64 * 3 + 3)  # sum and mean pooled: 2 * 64 inputs
    assert count_parameters(deepsets) == phi + rho
    transformer = build_model({"name": "transformer"}, f, g)
    assert 100_000 <= count_parameters(transformer) <= 300_000
    assert transformer.config["depth"] == 3 and transformer.config["class_depth"] == 2
    frozen = build_model({"name": "mlp"}, f, g)
    for p in frozen.net[0][0].parameters():
        p.requires_grad_(False)
    assert count_parameters(frozen) == count_parameters(mlp) - (g * 64 + 64)
    assert count_parameters(frozen, trainable_only=False) == count_parameters(mlp)


def test_build_model_rejects_bad_configs():
    with pytest.raises(ValueError, match="unknown model"):
        build_model({"name": "gnn"}, 4, 2)
    with pytest.raises(ValueError, match="trainer"):
        build_model({"name": "bdt"}, 4, 2)
    with pytest.raises(ValueError, match=r"unknown key model\.embed_dims; did you mean model\.embed_dim\?"):
        build_model({"name": "transformer", "embed_dims": 32}, 4, 2)
    with pytest.raises(ValueError, match="num_heads=4 must divide model.embed_dim=30"):
        build_model({"name": "transformer", "embed_dim": 30, "num_heads": 4}, 4, 2)
    with pytest.raises(ValueError, match=r"model\.dropout must be .*not 1\.5"):  # the schema's range
        build_model({"name": "mlp", "dropout": 1.5}, 4, 2)
    with pytest.raises(ValueError, match="pooling"):
        build_model({"name": "deepsets", "pooling": ["median"]}, 4, 2)
    with pytest.raises(ValueError, match="1 or 2"):
        build_model({"name": "mlp", "hidden_dims": [8, 8, 8]}, 4, 2)
    with pytest.raises(ValueError, match="pair_features"):
        build_model({"name": "transformer", "pair_features": ["ln_kt", "mass"]}, 4, 2)


def test_build_model_accepts_omegaconf_and_keeps_plain_config():
    omegaconf = pytest.importorskip("omegaconf")
    cfg = omegaconf.OmegaConf.create({"name": "deepsets", "phi_dims": [8, 8], "pooling": ["max"]})
    model = build_model(cfg, 3, 0)
    assert model.config["phi_dims"] == [8, 8] and type(model.config["phi_dims"]) is list
    assert model.config["name"] == "deepsets" and model.config["rho_dims"] == [64, 64]
    assert model.input_kind == "tracks" and build_model({"name": "mlp"}, 3, 2).input_kind == "event"


def test_model_config_files_build_and_equal_the_defaults():
    omegaconf = pytest.importorskip("omegaconf")
    config_dir = Path(__file__).resolve().parents[2] / "configs" / "model"
    for name, cls in MODELS.items():
        cfg = omegaconf.OmegaConf.load(config_dir / f"{name}.yaml")
        model = build_model(cfg, 16, 12)
        assert model.config == {"name": name, **cls.DEFAULTS}, name
    bdt = omegaconf.OmegaConf.to_container(omegaconf.OmegaConf.load(config_dir / "bdt.yaml"))
    assert bdt.pop("name") == "bdt"
    from sklearn.ensemble import HistGradientBoostingClassifier

    assert HistGradientBoostingClassifier(**bdt).get_params()["max_iter"] == bdt["max_iter"]


def test_missing_inputs_are_named():
    batch = random_batch([3, 2], 4)
    mlp = small_model("mlp")
    with pytest.raises(ValueError, match="event_features"):
        mlp(PaddedBatch(batch.features, batch.valid, batch.labels, None, batch.vectors))
    transformer = small_model("transformer")
    with pytest.raises(ValueError, match="vectors"):
        transformer(PaddedBatch(batch.features, batch.valid, batch.labels, batch.event_features, None))


# ---- normalisation ---------------------------------------------------------------------------
def test_fit_normalisation_sets_mean_and_scale():
    model = build_model({"name": "deepsets", "phi_dims": [8], "rho_dims": [8]}, 3, 2)
    assert torch.equal(model.track_mean, torch.zeros(3)) and torch.equal(model.track_scale, torch.ones(3))
    tracks = np.array([[1.0, 10.0, 5.0], [2.0, 10.0, -5.0], [3.0, 10.0, 5.0], [4.0, 10.0, -5.0]])
    events = np.array([[0.0, 100.0], [2.0, 300.0]])
    model.fit_normalisation(tracks, events)
    np.testing.assert_allclose(model.track_mean.numpy(), [2.5, 10.0, 0.0], atol=1e-6)
    # population std; the constant column keeps scale 1 instead of dividing by 0
    np.testing.assert_allclose(model.track_scale.numpy(), [math.sqrt(1.25), 1.0, 5.0], rtol=1e-6)
    np.testing.assert_allclose(model.event_mean.numpy(), [1.0, 200.0])
    np.testing.assert_allclose(model.event_scale.numpy(), [1.0, 100.0])
    assert bool(model.normalisation.fitted)
    assert {"normalisation.track_mean", "normalisation.event_scale"} <= set(model.state_dict())

    features = torch.tensor([[[4.0, 10.0, 5.0], [7.0, 7.0, 7.0]]])
    valid = torch.tensor([[True, False]])
    out = model.normalisation.tracks(features, valid)
    np.testing.assert_allclose(out.numpy(), [[[1.5 / math.sqrt(1.25), 0.0, 1.0], [0.0, 0.0, 0.0]]], rtol=1e-6)
    np.testing.assert_allclose(model.normalisation.events(torch.tensor([[3.0, 0.0]])).numpy(), [[2.0, -2.0]])

    with pytest.raises(ValueError, match="non-finite"):
        model.fit_normalisation(np.array([[1.0, np.nan, 0.0]]))
    with pytest.raises(ValueError, match="shape"):
        model.fit_normalisation(np.ones((4, 2)))


def test_normalisation_is_applied_to_raw_inputs():
    """A model fitted on raw data scores raw inputs like its unfitted twin scores standardised ones."""
    fitted = small_model("deepsets")
    plain = build_model(SMALL["deepsets"], F_TRACK, G_EVENT).eval()
    plain.load_state_dict({k: v for k, v in fitted.state_dict().items() if not k.startswith("normalisation.")},
                          strict=False)
    batch = random_batch([4, 1, 3], 5)
    standard = PaddedBatch(
        (batch.features - fitted.track_mean) / fitted.track_scale, batch.valid, batch.labels,
        (batch.event_features - fitted.event_mean) / fitted.event_scale, batch.vectors,
    )
    torch.testing.assert_close(fitted(batch), plain(standard), atol=1e-5, rtol=1e-5)


# ---- invariances and layouts -----------------------------------------------------------------
@pytest.mark.parametrize("key", SET_MODELS)
def test_track_permutation_changes_nothing(key):
    model = small_model(key)
    batch = random_batch([7, 3, 1, 5], 8)
    with torch.no_grad():
        reference, shuffled = model(batch), model(permuted(batch))
    assert reference.shape == (4, 3)
    assert (reference[0] - reference[1]).abs().max() > 1e-3  # outputs depend on the input at all
    torch.testing.assert_close(shuffled, reference, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("key", list(SMALL))
def test_extra_garbage_padding_changes_nothing(key):
    model = small_model(key)
    batch = random_batch([6, 2, 4], 6)
    with torch.no_grad():
        reference = model(batch)
        padded_more = model(with_garbage_padding(batch, extra=5))
        shuffled_garbage = model(permuted(with_garbage_padding(batch, extra=3)))
    assert torch.isfinite(padded_more).all()
    torch.testing.assert_close(padded_more, reference, atol=1e-5, rtol=1e-5)
    if key != "mlp":
        torch.testing.assert_close(shuffled_garbage, reference, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("key", list(SMALL))
def test_ragged_layout_matches_padded(key):
    model = small_model(key)
    batch = random_batch([5, 1, 0, 3, 5], 5)
    ragged = padded_to_ragged(batch)
    assert ragged.values.shape[0] == 14
    with torch.no_grad():
        torch.testing.assert_close(model(ragged), model(batch), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pooling", [["sum"], ["mean"], ["max"], ["attention"], ["sum", "max"]])
def test_deepsets_poolings_ragged_equals_padded(pooling):
    torch.manual_seed(3)
    model = build_model({"name": "deepsets", "phi_dims": [8, 8], "rho_dims": [8], "pooling": pooling,
                         "attention_heads": 2}, F_TRACK, G_EVENT).eval()
    batch = random_batch([4, 0, 2, 1], 6)
    with torch.no_grad():
        torch.testing.assert_close(model(padded_to_ragged(batch)), model(batch), atol=1e-5, rtol=1e-5)


def test_deepsets_sum_pooling_is_scaled():
    """With sum pooling only, doubling every track doubles the pooled sum: rho sees sum_scale * sum."""
    model = build_model({"name": "deepsets", "phi_dims": [4], "rho_dims": [], "pooling": ["sum"],
                         "sum_scale": 0.25}, 2, 0).eval()
    with torch.no_grad():
        model.phi[0].weight.copy_(torch.eye(4, 2))
        model.phi[0].bias.zero_()
    features = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])
    valid = torch.tensor([[True, True, False]])
    logits = model.forward_padded(features, valid)
    pooled = torch.tensor([[4.0, 6.0, 0.0, 0.0]]) * 0.25
    torch.testing.assert_close(logits, model.rho(pooled))


@pytest.mark.parametrize("key", SET_MODELS)
def test_events_without_tracks_are_finite_and_isolated(key):
    model = small_model(key).train()  # train mode: dropout off in SMALL, gradients flow
    batch = random_batch([3, 0, 5], 5)
    logits = model(batch)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    first = PaddedBatch(batch.features[:1], batch.valid[:1], batch.labels[:1], batch.event_features[:1],
                        batch.vectors[:1])
    with torch.no_grad():
        torch.testing.assert_close(model(batch)[0], model(first)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("key", list(SMALL))
def test_batch_without_any_track_slot(key):
    """N = 0 (a batch trimmed to its longest event, which is empty) scores like all-padded slots."""
    model = small_model(key)
    batch = random_batch([0, 0], 3)
    empty = PaddedBatch(batch.features[:, :0], batch.valid[:, :0], batch.labels, batch.event_features,
                        batch.vectors[:, :0])
    with torch.no_grad():
        logits = model(empty)
        assert logits.shape == (2, 3) and torch.isfinite(logits).all()
        torch.testing.assert_close(logits, model(batch), atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(model(padded_to_ragged(empty)), logits, atol=1e-6, rtol=1e-6)


def test_key_padding_bias_guards_empty_rows():
    valid = torch.tensor([[True, False, True], [False, False, False]])
    bias = key_padding_bias(valid)
    assert bias.shape == (2, 1, 1, 3)
    assert bias[0, 0, 0].tolist() == [0.0, float("-inf"), 0.0]
    assert bias[1, 0, 0].tolist() == [0.0, 0.0, 0.0]


# ---- pair features ---------------------------------------------------------------------------
def test_pair_feature_values():
    # track 0: 10 GeV along x from the origin; track 1: 10 GeV along y from (0, 0, 1 mm);
    # track 2: 5 GeV along x from (0, 0.5 mm, 0) (parallel to track 0); slot 3 padded garbage.
    vectors = torch.tensor([[
        [10.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [10.0, 0.0, 10.0, 0.0, 0.0, 0.0, 1.0],
        [5.0, 5.0, 0.0, 0.0, 0.0, 0.5, 0.0],
        [float("nan"), 1e9, 3.0, 0.0, 1.0, 1.0, 1.0],
    ]])
    valid = torch.tensor([[True, True, True, False]])
    feats = pair_features(vectors, valid)[0]
    assert feats.shape == (4, 4, len(PAIR_FEATURES))
    kt, z, delta, m2, dca = (feats[..., PAIR_FEATURES.index(n)] for n in ("ln_kt", "ln_z", "ln_delta", "ln_m2", "ln_dca"))
    # 0-1: 90 degrees; kT = min(E) * 2 sin(45 deg) = 10 sqrt(2); z = 1/2; m^2 = 2 * 10 * 10; DCA = 1 mm
    assert kt[0, 1].item() == pytest.approx(math.log(10 * math.sqrt(2)), abs=1e-5)
    assert z[0, 1].item() == pytest.approx(math.log(0.5), abs=1e-6)
    assert delta[0, 1].item() == pytest.approx(math.log(math.pi / 2), abs=1e-5)
    assert m2[0, 1].item() == pytest.approx(math.log(200.0), abs=1e-5)
    assert dca[0, 1].item() == pytest.approx(math.log(1.0), abs=1e-5)
    # 0-2: parallel lines 0.5 mm apart, collinear massless momenta -> angle, kT and m^2 at their floors
    assert dca[0, 2].item() == pytest.approx(math.log(0.5), abs=1e-5)
    assert z[0, 2].item() == pytest.approx(math.log(5 / 15), abs=1e-6)
    assert delta[0, 2].item() == pytest.approx(math.log(1e-5), abs=1e-3)
    assert m2[0, 2].item() == pytest.approx(math.log(1e-6), abs=1e-3)
    # symmetric in (i, j); pairs with the padded slot are exactly 0
    torch.testing.assert_close(feats, feats.transpose(0, 1))
    assert torch.all(feats[3] == 0) and torch.all(feats[:, 3] == 0)


@pytest.mark.parametrize(("energy", "angle", "rel"), [(45.0, 3e-4, 1e-2), (10.0, 1e-2, 1e-3), (2.0, 0.1, 1e-4)])
def test_pair_mass_of_energetic_collinear_pions(energy, angle, rel):
    """float32 m^2 of two pions agrees with a float64 evaluation of the same float32 inputs."""
    m_pi = 0.13957
    p = math.sqrt(energy**2 - m_pi**2)
    vectors = torch.tensor([[[energy, p, 0.0, 0.0, 0.0, 0.0, 0.0],
                             [energy, p * math.cos(angle), p * math.sin(angle), 0.0, 0.0, 0.0, 0.0]]])
    total = vectors[0].double().sum(0)
    exact = (total[0] ** 2 - total[1:4].square().sum()).item()
    assert exact == pytest.approx(4 * m_pi**2 + 2 * p**2 * (1 - math.cos(angle)), rel=0.05)
    got = pair_features(vectors, torch.ones(1, 2, dtype=torch.bool))[0, 0, 1, PAIR_FEATURES.index("ln_m2")]
    assert math.exp(got.item()) == pytest.approx(exact, rel=rel)


def test_pair_feature_subset_and_bias_shape():
    model = build_model({"name": "transformer", "embed_dim": 8, "num_heads": 2, "depth": 1, "class_depth": 1,
                         "pair_features": ["ln_delta", "ln_dca"], "pair_hidden": [4]}, 3, 0).eval()
    assert model.pair_embed.net[0].in_features == 2
    batch = random_batch([2, 3], 4)
    bias = model.pair_embed(batch.vectors, batch.valid)
    assert bias.shape == (2, 2, 4, 4)
    assert torch.all(bias[0, :, 2:, :] == 0) and torch.all(bias[0, :, :, 2:] == 0)


# ---- checkpoints -----------------------------------------------------------------------------
@pytest.mark.parametrize("key", list(SMALL))
def test_checkpoint_round_trip(key):
    model = small_model(key)
    model.feature_names = {"track": [f"t{i}" for i in range(F_TRACK)], "event": [f"e{i}" for i in range(G_EVENT)]}
    # the resolution functions of the training sample travel with the weights (issue 24)
    model.training_resolution = {"mode": "function", "d0": {"a_mm": 0.0057, "b_mm_gev": 0.0099, "a_mm_error": None}}
    buffer = io.BytesIO()
    torch.save(checkpoint_state(model), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    rebuilt = model_from_checkpoint(state).eval()
    assert rebuilt.config == model.config and rebuilt.feature_names == model.feature_names
    assert rebuilt.training_resolution == model.training_resolution
    torch.testing.assert_close(rebuilt.track_scale, model.track_scale)
    batch = random_batch([4, 2], 4)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(batch), model(batch), atol=0, rtol=0)
    with pytest.raises(ValueError, match="class order"):
        model_from_checkpoint({**state, "class_names": ["bb", "cc", "uds"]})


# ---- learning --------------------------------------------------------------------------------
def toy_problem(n_events: int, seed: int) -> PaddedBatch:
    """Class y: tracks carry feature 0 ~ N(y, 0.35) on a raw scale (x 40 + 100), event features too."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n_events,), generator=gen)
    counts = torch.randint(2, 9, (n_events,), generator=gen)
    n_slots = 8
    valid = torch.arange(n_slots)[None, :] < counts[:, None]
    features = torch.randn(n_events, n_slots, F_TRACK, generator=gen)
    features[..., 0] = labels[:, None].float() + 0.35 * features[..., 0]
    features = (features * 40.0 + 100.0) * valid[..., None]
    event_features = torch.randn(n_events, G_EVENT, generator=gen) * 3.0 + 7.0
    event_features[:, 1] = 5.0 * labels.float() + 1.0 * torch.randn(n_events, generator=gen) + 20.0
    vectors = random_vectors(gen, (n_events, n_slots)) * valid[..., None]
    return PaddedBatch(features, valid, labels, event_features, vectors)


@pytest.mark.parametrize("key", ["mlp", "deepsets", "transformer"])
def test_models_learn_separable_toy(key):
    torch.manual_seed(0)
    train, test = toy_problem(768, seed=10), toy_problem(300, seed=11)
    cfg = dict(SMALL[key])
    if key != "mlp":
        cfg["use_event_features"] = False  # learn from the tracks alone
    model = build_model(cfg, F_TRACK, G_EVENT)
    model.fit_normalisation(train.features[train.valid].numpy(), train.event_features.numpy())
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for _epoch in range(8):
        for start in range(0, len(train), 64):
            part = slice(start, start + 64)
            batch = PaddedBatch(train.features[part], train.valid[part], train.labels[part],
                                train.event_features[part], train.vectors[part])
            loss = torch.nn.functional.cross_entropy(model(batch), batch.labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(test).argmax(1) == test.labels).float().mean().item()
    assert accuracy > 0.9, f"{key}: accuracy {accuracy:.3f}"
