"""Typed configuration: the dataclasses every Hydra config becomes. Validation lives here."""

from __future__ import annotations

from dataclasses import dataclass, field
from platform.data.layouts import LAYOUTS
from platform.errors import ConfigError

MODEL_KINDS = ("medseglatdiff", "unet", "pixel_diffusion")
CONDITIONING = ("concat", "cfg")  # shorthand: cfg = concat entry + classifier-free guidance
CONDITION_ENTRIES = ("concat",)  # how the condition enters the denoiser (room for crossattn)
PREDICTIONS = ("epsilon", "v_prediction", "sample")  # sample: the denoiser predicts x0
LR_SCHEDULES = ("constant", "poly")


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


@dataclass
class DataConfig:
    """One dataset: where it lives, how it is laid out, how it is prepared and split."""

    name: str = "synthetic"
    layout: str = "synthetic"
    root: str = ""
    image_size: int = 128
    channels: int = 1
    annotators: int = 1
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    wce_weight: float = 5.0  # the paper's foreground weight for this kind of target
    synthetic_count: int = 64

    def __post_init__(self) -> None:
        _check(self.layout in LAYOUTS, "data.layout", f"'{self.layout}' is not one of {LAYOUTS}")
        _check(
            self.image_size >= 16 and self.image_size % 8 == 0,
            "data.image_size",
            f"{self.image_size} must be a multiple of 8 and at least 16",
        )
        _check(self.channels in (1, 3), "data.channels", f"{self.channels} must be 1 or 3")
        _check(self.annotators >= 1, "data.annotators", f"{self.annotators} must be ≥ 1")
        for key, value in (("val_fraction", self.val_fraction), ("test_fraction", self.test_fraction)):
            _check(0.0 <= value < 1.0, f"data.{key}", f"{value} must be in [0, 1)")
        _check(
            self.val_fraction + self.test_fraction < 1.0,
            "data.val_fraction",
            "val_fraction + test_fraction must leave a training split",
        )
        _check(self.wce_weight > 0, "data.wce_weight", f"{self.wce_weight} must be > 0")
        _check(self.layout == "synthetic" or bool(self.root), "data.root", "is required for this layout")


@dataclass
class ModelConfig:
    """The model and the study's axes: latent size, WCE weight, conditioning mode."""

    kind: str = "medseglatdiff"
    latent_factor: int = 4
    latent_channels: int = 4
    ae_width: int = 16  # autoencoder channels: [w, 2w, 2w, ...], one level per halving
    ae_crop: int = 0  # mask autoencoder trained on random crops of this side; 0 or ≥ image size: whole masks
    ae_crop_foreground: bool = False  # a crop of a mask with foreground holds some of it
    # the UNet baseline and the latent model's prior (one network, one key) train on random
    # image-mask windows of this side, placed on foreground where there is some; 0: whole images
    segmenter_crop: int = 0
    # the same network's weights: an exponential moving average with this decay, kept while its
    # stage trains and adopted when the stage ends; 0: the last step's weights
    segmenter_ema_decay: float = 0.0
    kl_weight: float = 1e-6
    ae_sample_posterior: bool = True  # false: the autoencoder decodes the posterior mean in training too
    wce_weight: float | None = None  # None: the dataset's paper default (data.wce_weight)
    adaptive_wce: bool = False  # w = background/foreground pixel ratio of the training set
    adaptive_wce_max: float = 100.0
    dice_weight: float = 1.0
    cond_channels: int = 16
    encoder_channels: list[int] = field(default_factory=lambda: [16, 32, 32])
    image_encoder_init: str = "none"  # none | autoencoder: pre-train the condition encoder on image reconstruction
    denoiser_channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    attention_levels: list[bool] = field(default_factory=lambda: [False, False, True])
    norm_num_groups: int = 8
    condition_entry: str = "concat"
    guidance: bool = False  # classifier-free guidance: train with dropped conditions, sample with scale s
    conditioning: str | None = None  # shorthand kept for specs: concat | cfg (= guidance on); see `mode`
    p_uncond: float = 0.1
    guidance_scale: float | None = None  # only with conditioning=cfg; None there means 2.0
    prediction: str = "epsilon"
    train_timesteps: int = 1000
    schedule: str = "scaled_linear_beta"
    ema_decay: float = 0.999
    prior: bool = False  # a supervised UNet (own stage, then frozen) whose probability map conditions the denoiser
    prior_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    prior_strength: float = 1.0  # sampling starts from the prior's mask latent noised to s·T; 1 = pure noise
    prior_threshold: float | None = None  # probability making the prior's start mask; None: fitted on validation
    prior_threshold_spread: float | None = 0.0  # sample k's start mask at threshold·e^(spread·q_k); None: fitted
    threshold_spread: float = 0.0  # model.kind=unet: sample k is its map thresholded at 0.5·e^(spread·q_k)
    tta: bool = False  # sampling: the UNet's map or the latent model's prior map averaged over 8 flips/rotations
    binary_samples: bool = False  # sampling, diffusion models: each decoded sample is its mask (≥ 0.5)
    majority_at_threshold: bool = False  # sampling: the spread's K/2-th threshold is its center (majority = map's mask)
    prior_start_share: float = 0.0  # training: share of x_t noised from the prior's mask, aimed at the annotation
    x0_loss_weight: float = 0.0  # WCE + Dice on the decoded x̂0, weighted by ᾱ_t
    truncate_timesteps: bool = False  # with a prior and prior_strength < 1: train only on t < prior_strength·T

    def __post_init__(self) -> None:
        _check(self.kind in MODEL_KINDS, "model.kind", f"'{self.kind}' is not one of {MODEL_KINDS}")
        _check(self.latent_factor in (2, 4, 8), "model.latent_factor", f"{self.latent_factor} is not one of (2, 4, 8)")
        _check(self.latent_channels >= 1, "model.latent_channels", f"{self.latent_channels} must be ≥ 1")
        _check(
            self.ae_crop >= 0 and self.ae_crop % (4 * self.latent_factor) == 0,
            "model.ae_crop",
            f"{self.ae_crop} must be 0 or a positive multiple of 4·latent_factor = {4 * self.latent_factor}",
        )
        _check(
            self.segmenter_crop >= 0 and self.segmenter_crop % 16 == 0,
            "model.segmenter_crop",
            f"{self.segmenter_crop} must be 0 or a positive multiple of 16 (the UNets halve it up to three times)",
        )
        _check(
            self.conditioning is None or self.conditioning in CONDITIONING,
            "model.conditioning",
            f"'{self.conditioning}' is not one of {CONDITIONING}",
        )
        _check(
            self.condition_entry in CONDITION_ENTRIES,
            "model.condition_entry",
            f"'{self.condition_entry}' is not one of {CONDITION_ENTRIES}",
        )
        if self.conditioning == "cfg":
            self.guidance = True
        _check(
            not (self.conditioning == "concat" and self.guidance),
            "model.guidance",
            "true contradicts model.conditioning=concat (use conditioning=cfg, or guidance=true alone)",
        )
        _check(
            self.guidance_scale is None or self.guidance,
            "model.guidance_scale",
            "is only used with model.conditioning=cfg (concatenation has no guidance)",
        )
        _check(0.0 <= self.p_uncond < 1.0, "model.p_uncond", f"{self.p_uncond} must be in [0, 1)")
        _check(self.prediction in PREDICTIONS, "model.prediction", f"'{self.prediction}' is not one of {PREDICTIONS}")
        _check(
            len(self.denoiser_channels) == len(self.attention_levels),
            "model.attention_levels",
            "needs one entry per denoiser_channels level",
        )
        for key, chans in (("denoiser_channels", self.denoiser_channels), ("ae_width", self.ae_channels)):
            _check(
                all(c % self.norm_num_groups == 0 for c in chans),
                f"model.{key}",
                f"{chans}: every entry must be a multiple of norm_num_groups={self.norm_num_groups}",
            )
        _check(self.wce_weight is None or self.wce_weight > 0, "model.wce_weight", f"{self.wce_weight} must be > 0")
        _check(
            self.image_encoder_init in ("none", "autoencoder"),
            "model.image_encoder_init",
            f"'{self.image_encoder_init}' is not none or autoencoder",
        )
        _check(0.0 < self.ema_decay < 1.0, "model.ema_decay", f"{self.ema_decay} must be in (0, 1)")
        _check(
            0.0 <= self.segmenter_ema_decay < 1.0,
            "model.segmenter_ema_decay",
            f"{self.segmenter_ema_decay} must be in [0, 1) (0: no averaging)",
        )
        _check(0.0 < self.prior_strength <= 1.0, "model.prior_strength", f"{self.prior_strength} must be in (0, 1]")
        _check(
            self.prior or self.prior_strength == 1.0,
            "model.prior_strength",
            "is only used with model.prior=true (sampling starts from the prior's mask)",
        )
        _check(
            0.0 <= self.prior_start_share <= 1.0,
            "model.prior_start_share",
            f"{self.prior_start_share} must be in [0, 1]",
        )
        _check(
            self.prior or self.prior_start_share == 0.0,
            "model.prior_start_share",
            "is only used with model.prior=true (training starts from the prior's masks)",
        )
        _check(self.x0_loss_weight >= 0, "model.x0_loss_weight", f"{self.x0_loss_weight} must be ≥ 0")
        _check(
            self.prior_threshold is None or 0.0 < self.prior_threshold < 1.0,
            "model.prior_threshold",
            f"{self.prior_threshold} must be in (0, 1), or null to fit it on the validation images",
        )
        for key in ("prior_threshold_spread", "threshold_spread"):
            spread = getattr(self, key)
            fittable = key == "prior_threshold_spread"
            _check(
                (spread is None and fittable) or (spread is not None and 0.0 <= spread <= 3.0),
                f"model.{key}",
                f"{spread} must be in [0, 3]" + (", or null to fit it on the validation images" if fittable else ""),
            )
        _check(
            self.threshold_spread == 0 or self.kind == "unet",
            "model.threshold_spread",
            "applies to model.kind=unet; the latent model spreads its start masks with model.prior_threshold_spread",
        )
        _check(
            not self.binary_samples or self.kind != "unet",
            "model.binary_samples",
            "applies to the diffusion models; the UNet's samples are its probability map",
        )

    @property
    def ae_channels(self) -> list[int]:
        """Autoencoder channels per level; log2(latent_factor) halvings."""
        levels = self.latent_factor.bit_length()
        return [self.ae_width] + [2 * self.ae_width] * (levels - 1)

    @property
    def mode(self) -> str:
        """'cfg' with classifier-free guidance, else 'concat' (the condition is concatenated either way)."""
        return "cfg" if self.guidance else "concat"

    @property
    def effective_guidance_scale(self) -> float:
        return 2.0 if self.guidance_scale is None else self.guidance_scale


@dataclass
class TrainConfig:
    """Budget, optimisation and evaluation settings of one training run."""

    seed: int = 0
    device: str = "auto"  # auto: CUDA when present, else CPU
    threads: int = 2
    batch_size: int = 16
    lr: float = 2e-3
    lr_schedule: str = "constant"  # constant | poly: lr·(1 − step/steps)^0.9 within each stage (nnU-Net)
    ae_steps: int = 300
    image_ae_steps: int = 100  # only with model.image_encoder_init=autoencoder
    prior_steps: int = 600  # only with model.prior=true
    diffusion_steps: int = 600
    foreground_share: float = 0.33  # of each batch drawn from images with foreground (nnU-Net: a third)
    augment: bool = True  # flips, 90° rotations, intensity jitter
    log_every: int = 25
    eval_samples: int = 8
    ddim_steps: int = 20
    eval_images: int = 64
    stage: str = "all"  # all | autoencoder | diffusion
    prepared_dir: str = "prepared"
    runs_dir: str = "runs"
    run_name: str | None = None
    val_every: int = 0  # steps of the last stage between quick validations (pruning signal); 0 = off
    val_images: int = 8
    val_steps: int = 5
    stage_store: str = ""  # a folder of finished stages shared by runs (platform/stage_store.py); "" = off

    def __post_init__(self) -> None:
        _check(self.device in ("auto", "cpu", "cuda"), "train.device", f"'{self.device}' is not auto, cpu or cuda")
        _check(
            self.stage in ("all", "autoencoder", "diffusion"),
            "train.stage",
            f"'{self.stage}' is not all, autoencoder or diffusion",
        )
        for key in ("threads", "batch_size", "eval_samples", "ddim_steps", "log_every"):
            _check(getattr(self, key) >= 1, f"train.{key}", f"{getattr(self, key)} must be ≥ 1")
        for key in ("ae_steps", "image_ae_steps", "prior_steps", "diffusion_steps", "eval_images"):
            _check(getattr(self, key) >= 0, f"train.{key}", f"{getattr(self, key)} must be ≥ 0")
        _check(self.lr > 0, "train.lr", f"{self.lr} must be > 0")
        _check(
            self.lr_schedule in LR_SCHEDULES,
            "train.lr_schedule",
            f"'{self.lr_schedule}' is not {' or '.join(LR_SCHEDULES)}",
        )
        _check(
            0.0 <= self.foreground_share <= 1.0,
            "train.foreground_share",
            f"{self.foreground_share} must be in [0, 1]",
        )


@dataclass
class Config:
    """Everything one run needs, composed from platform/conf/ by platform.config."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        size, f = self.data.image_size, self.model.latent_factor
        if self.model.kind != "medseglatdiff":
            return
        _check(
            size % f == 0 and (size // f) % 4 == 0,
            "model.latent_factor",
            f"{f} gives a latent of {size / f:g} px for data.image_size={size}; "
            "the latent side must be a whole multiple of 4",
        )
