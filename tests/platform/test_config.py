from platform.config import config_to_yaml, load_config
from platform.errors import ConfigError

import pytest


def test_default_config_composes_to_typed_dataclasses():
    config = load_config()
    assert config.data.name == "lidc" and config.data.annotators == 4 and config.data.wce_weight == 5.0
    assert config.model.kind == "medseglatdiff" and config.model.ae_channels == [16, 32, 32]
    assert "latent_factor: 4" in config_to_yaml(config)


def test_group_and_key_overrides():
    config = load_config(["data=ph2", "model.latent_factor=8", "model.conditioning=cfg", "model.guidance_scale=3"])
    assert config.data.channels == 3 and config.model.ae_channels == [16, 32, 32, 32]
    assert config.model.effective_guidance_scale == 3.0


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        (["data.foo=1"], "data.foo"),
        (["+data.foo=1"], "data.foo"),
        (["+nonsense=1"], "nonsense"),
        (["data.image_size=abc"], "data.image_size"),
        (["data=nope"], "data/nope"),
        (["data.layout=tiff_stack"], "data.layout"),
        (["data.val_fraction=0.6", "data.test_fraction=0.5"], "data.val_fraction"),
        (["model.conditioning=crossattn"], "model.conditioning"),
        (["model.guidance_scale=2"], "model.guidance_scale"),
        (["model.latent_factor=3"], "model.latent_factor"),
        (["data.image_size=48", "model.latent_factor=8"], "model.latent_factor"),
        (["model.ae_width=12"], "model.ae_width"),
        (["train.batch_size=0"], "train.batch_size"),
        (["train.device=tpu"], "train.device"),
        (["train.lr_schedule=cosine"], "train.lr_schedule"),
        (["model.prior_threshold=1.0"], "model.prior_threshold"),
        (["model.ae_crop=20"], "model.ae_crop"),
        (["model=unet", "model.binary_samples=true"], "model.binary_samples"),
    ],
)
def test_bad_config_names_the_key(overrides, names):
    with pytest.raises(ConfigError, match=names.replace(".", r"\.")):
        load_config(overrides)


def test_budget_files_give_each_dataset_and_model_its_ten_minute_steps():
    ldm, unet = load_config().train, load_config(["model=unet"]).train
    assert (ldm.ae_steps, ldm.prior_steps, ldm.diffusion_steps) == (1440, 5800, 30)  # conf/budget/lidc_medseglatdiff
    assert (unet.ae_steps, unet.diffusion_steps) == (0, 7600)  # the segmenter's steps are their sum
    assert load_config(["model=unet", "train.diffusion_steps=7"]).train.diffusion_steps == 7  # the command line wins
    plain = load_config(["data=synthetic"]).train  # no budget file: train/default.yaml
    assert (plain.ae_steps, plain.prior_steps, plain.diffusion_steps) == (300, 600, 600)


def test_every_budget_file_names_a_dataset_and_a_model():
    """A misspelt budget file would silently never apply (the defaults entry is optional)."""
    from platform.config import CONF_DIR

    data = {p.stem for p in (CONF_DIR / "data").glob("*.yaml")}
    models = {p.stem for p in (CONF_DIR / "model").glob("*.yaml")}
    pairs = {f"{d}_{m}" for d in data for m in models}
    files = {p.stem for p in (CONF_DIR / "budget").glob("*.yaml")}
    assert files and files <= pairs, sorted(files - pairs)
