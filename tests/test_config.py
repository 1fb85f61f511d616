"""Run configuration: validation of every field and the profiles."""
from __future__ import annotations

import dataclasses

import pytest

from n2n_core import get_profile
from n2n_core.config import PROFILES, Budget, ModelConfig, NoiseConfig, Profile, TrainConfig, to_dict


@pytest.mark.parametrize("kind", ["speckle", "Gaussian", ""])
def test_unknown_noise_kind_is_named(kind):
    with pytest.raises(ValueError, match=repr(kind)):
        NoiseConfig(kind=kind)


@pytest.mark.parametrize("sigma", [-1.0, -25.0])
def test_negative_sigma_is_named(sigma):
    with pytest.raises(ValueError, match=str(sigma)):
        NoiseConfig(sigma=sigma)


@pytest.mark.parametrize("bad", [(-1.0, 10.0), (30.0, 20.0)])
def test_bad_training_sigma_range_is_named(bad):
    with pytest.raises(ValueError, match="train_sigma_range"):
        NoiseConfig(train_sigma_range=bad)


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="'vgg'"):
        ModelConfig(name="vgg")


def test_unknown_target_and_loss_are_named():
    with pytest.raises(ValueError, match="'median'") as info:
        TrainConfig(target="median", max_steps=1)
    assert "noisy" in str(info.value) and "clean" in str(info.value)  # the choices
    with pytest.raises(ValueError, match="'l3'") as info:
        TrainConfig(loss="l3", max_steps=1)
    assert "l0" in str(info.value)  # the choices


def test_train_config_needs_a_budget():
    with pytest.raises(ValueError, match="budget"):
        TrainConfig()
    assert TrainConfig(max_steps=5).max_steps == 5
    assert TrainConfig(max_seconds=1.5).max_seconds == 1.5


@pytest.mark.parametrize("budget", [{"max_steps": 0}, {"max_steps": -5}, {"max_seconds": 0.0},
                                    {"max_seconds": -1.0}])
def test_train_config_rejects_a_non_positive_budget(budget):
    # 0 would divide by zero in fit(), a negative budget would never end
    with pytest.raises(ValueError, match=next(iter(budget))):
        TrainConfig(**budget)


@pytest.mark.parametrize("field,value", [("crop", 0), ("batch_size", -2), ("val_every", 0), ("lr", 0.0), ("lr", -1e-3)])
def test_train_config_rejects_non_positive_values(field, value):
    with pytest.raises(ValueError, match=field if field != "lr" else "learning rate"):
        TrainConfig(max_steps=1, **{field: value})


def test_configs_are_frozen():
    cfg = TrainConfig(max_steps=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]
    assert dataclasses.replace(cfg, lr=0.5).lr == 0.5 and cfg.lr == 1e-3


def test_get_profile_returns_the_named_profile():
    assert get_profile("smoke") is PROFILES["smoke"]
    assert get_profile("cpu").name == "cpu"


def test_get_profile_respects_the_environment_override(monkeypatch, capsys):
    monkeypatch.setenv("N2N_PROFILE", "smoke")
    assert get_profile("paper").name == "smoke"
    assert "N2N_PROFILE=smoke" in capsys.readouterr().out
    monkeypatch.setenv("N2N_PROFILE", "nonsense")
    with pytest.raises(ValueError, match="nonsense"):
        get_profile("cpu")


def test_get_profile_unknown_name_lists_the_choices():
    with pytest.raises(ValueError) as info:
        get_profile("gpu")
    assert "gpu" in str(info.value) and all(name in str(info.value) for name in PROFILES)


def test_profile_model_lookup():
    profile = get_profile("cpu")
    assert profile.model("unet").name == "unet" and profile.model("resnet").name == "resnet"
    with pytest.raises(ValueError, match="'vgg'"):
        profile.model("vgg")


def test_per_model_budget_replaces_the_profiles_seconds():
    base = PROFILES["smoke"]
    profile = dataclasses.replace(base, budgets=(Budget("unet", seconds=30.0),))
    assert profile.train_config("unet").max_seconds == 30.0
    assert profile.train_config("unet").max_steps == base.train.max_steps  # the other settings stay
    assert profile.train_config("resnet") == base.train
    with pytest.raises(ValueError, match="'vgg'"):
        profile.train_config("vgg")


@pytest.mark.parametrize("kwargs,match", [(dict(model="vgg", seconds=10.0), "'vgg'"),
                                          (dict(model="unet", seconds=0.0), "unet/\\* must be > 0"),
                                          (dict(model="unet", noise="speckle", steps=3), "'speckle'"),
                                          (dict(model="unet", steps=3, seconds=4.0), "steps or seconds, one of them"),
                                          (dict(model="unet"), "steps or seconds")])
def test_bad_budget_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Budget(**kwargs)


def test_every_profile_is_valid_and_has_a_budget():
    for name, profile in PROFILES.items():
        assert isinstance(profile, Profile) and profile.name == name
        assert profile.train.max_steps is not None or profile.train.max_seconds is not None
        assert profile.train.crop <= profile.data.patch_size  # training crops are cut from the patches
        assert profile.noise.sigma == 25.0  # the test-time sigma of Table 1


def test_paper_profile_follows_the_papers_recipe():
    # PAPER.md, "Training recipe" (released code): 256x256 crops, batch 4, lr 0.0003, 300k iterations,
    # ramp-down over the last 30 %, blind sigma ~ U(0, 50); RED30: 30 layers of 128 feature maps
    paper = PROFILES["paper"]
    assert (paper.train.crop, paper.train.batch_size, paper.train.lr) == (256, 4, 3e-4)
    assert paper.train.max_steps == 300_000 and paper.train.rampdown == 0.3
    assert paper.noise.train_sigma_range == (0.0, 50.0)
    assert (paper.resnet.depth, paper.resnet.width) == (30, 128)
    assert paper.train.target == "noisy" and paper.train.loss == "l2"  # L2 for Gaussian noise


def test_to_dict_is_plain_data():
    d = to_dict(PROFILES["smoke"])
    assert d["train"]["max_steps"] == PROFILES["smoke"].train.max_steps
    assert d["data"] == dataclasses.asdict(PROFILES["smoke"].data)
    assert d["noise"] == {"kind": "gaussian", "sigma": 25.0, "lam": 30.0, "p": 0.5, "impulse_p": 0.7,
                          "text_p": 0.25, "brown_sigma": 25.0, "brown_width": 2.0,
                          "train_sigma_range": None, "train_lam_range": None, "train_p_range": None,
                          "train_impulse_p_range": None, "train_text_p_range": None, "train_brown_sigma_range": None}


@pytest.mark.parametrize("field,value", [("lam", 0.0), ("p", 1.0), ("p", -0.1), ("train_lam_range", (0.0, 50.0)),
                                         ("train_p_range", (0.0, 1.0)), ("train_sigma_range", (5.0, 1.0))])
def test_bad_poisson_and_bernoulli_levels_are_named(field, value):
    with pytest.raises(ValueError, match=field.replace("train_", "") if field.startswith("train") else field):
        NoiseConfig(**{field: value})


def test_noise_config_selects_a_kind_and_its_budget():
    profile = dataclasses.replace(PROFILES["smoke"], budgets=(Budget("unet", seconds=30.0),
                                                              Budget("unet", "poisson", seconds=12.0)))
    assert profile.noise_config("poisson").kind == "poisson" and profile.noise_config().kind == "gaussian"
    assert profile.noise_config("bernoulli").label == "Bernoulli p=0.5"
    assert profile.train_config("unet", "poisson").max_seconds == 12.0  # the noise's budget wins
    assert profile.train_config("unet", "bernoulli").max_seconds == 30.0
    with pytest.raises(ValueError, match="'speckle'"):
        profile.train_config("unet", "speckle")


@pytest.mark.parametrize("field,value", [("val_patches", 0), ("train_patches", -1), ("patch_size", 0),
                                         ("val_image_every", 1)])
def test_data_config_rejects_bad_values(field, value):
    from n2n_core.config import DataConfig

    with pytest.raises(ValueError, match=field):
        DataConfig(**{field: value})


@pytest.mark.parametrize("field,value", [("crop", 5), ("limit", 0), ("baseline_limit", 0), ("repeats", (("kodak", 0),)),
                                         ("limits", (("bsd300", 1.5),))])
def test_eval_config_rejects_bad_values(field, value):
    from n2n_core.config import EvalConfig

    with pytest.raises(ValueError, match=field):
        EvalConfig(**{field: value})


def test_step_budgets_replace_time_budgets_for_their_model_and_noise_only():
    profile = dataclasses.replace(PROFILES["smoke"], budgets=(Budget("resnet", seconds=30.0), Budget("unet", seconds=40.0),
                                                              Budget("unet", "gaussian", steps=123)))
    unet = profile.train_config("unet", "gaussian")
    assert (unet.max_steps, unet.max_seconds) == (123, None)
    assert profile.train_config("resnet", "gaussian").max_seconds == 30.0  # the ResNet keeps its seconds
    assert profile.train_config("unet", "poisson").max_seconds == 40.0  # no step budget for Poisson
    assert profile.budget("resnet", "poisson") == Budget("resnet", seconds=30.0)


def test_a_precision_budget_applies_in_its_precision_only_with_its_own_step():
    profile = dataclasses.replace(PROFILES["smoke"], budgets=(
        Budget("unet", "gaussian", steps=300, precision="bf16", batch_size=8, lr=1e-3),
        Budget("unet", "gaussian", steps=400), Budget("unet", seconds=20.0, precision="fp32")))
    fast = profile.train_config("unet", "gaussian", "bf16")
    assert (fast.max_steps, fast.batch_size, fast.lr) == (300, 8, 1e-3)
    for precision in ("fp32", None):  # elsewhere the budget for any precision, with the profile's step
        plain = profile.train_config("unet", "gaussian", precision)
        assert (plain.max_steps, plain.batch_size, plain.lr) == (400, profile.train.batch_size, profile.train.lr)
    assert profile.train_config("unet", "poisson", "fp32").max_seconds == 20.0
    assert profile.train_config("unet", "poisson", "bf16") == profile.train  # no budget for it: the profile's
    run = profile.run_settings("unet", "gaussian", "clean", seed=3, precision="bf16", max_steps=50)
    assert (run.max_steps, run.batch_size, run.target, run.seed) == (50, 8, "clean", 3)


@pytest.mark.parametrize("kwargs,match", [(dict(precision="fp16"), "'fp16'"), (dict(batch_size=0), "batch_size"),
                                          (dict(lr=0.0), "learning rate")])
def test_bad_precision_budget_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Budget("unet", "gaussian", steps=10, **kwargs)


def test_cpu_profile_gives_noisy_and_clean_unets_equal_steps_on_every_noise():
    cpu = PROFILES["cpu"]
    for kind in ("gaussian", "poisson", "bernoulli"):
        for precision in (None, "fp32", "bf16"):
            assert cpu.train_config("unet", kind, precision).max_steps is not None
            assert cpu.train_config("unet", kind, precision).max_seconds is None
    assert cpu.checks.max_table_gap_db == 0.3  # the limit, the same for every noise
    assert cpu.train_config("resnet", "bernoulli").max_seconds == 300.0 and cpu.budget("resnet", "gaussian") is None


def test_run_settings_apply_target_seed_fields_and_a_budget_in_that_order():
    cpu = PROFILES["cpu"]
    cfg = cpu.run_settings("unet", "poisson", "clean", 3, lr=1e-4, crop=None)
    assert (cfg.target, cfg.seed, cfg.lr, cfg.crop, cfg.max_steps) == ("clean", 3, 1e-4, cpu.train.crop, 1800)
    timed = cpu.run_settings("unet", "poisson", max_seconds=20.0)
    assert (timed.max_steps, timed.max_seconds) == (None, 20.0)  # a given budget replaces the profile's
    with pytest.raises(ValueError, match="batch_size"):
        cpu.run_settings("unet", batch_size=0)
