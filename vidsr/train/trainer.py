"""Train or fine-tune an upscaler with ESRGAN's recipe: the loop, EMA, schedule, validation, resume.

Two stages, run one after the other into different ``out`` folders:

* ``psnr``: L1 only, Adam at 2e-4 halved at each fifth of the run (the paper's "every 2e5 of
  1e6 updates", scaled to ``steps``).
* ``gan``: L_percep (VGG19 conv5_4 before activation) + 5e-3 · RaGAN + 1e-2 · L1, Adam at 1e-4
  halved at 1/8, 1/4, 1/2 and 3/4 of the run (the paper's 50k, 100k, 200k, 300k of 400k).

``OUT/checkpoint.pt`` holds everything to continue (networks, EMA, optimisers, step, the data
generator's state), written atomically; the same call again continues from it and refuses a
changed setup. ``OUT/model.safetensors`` is the EMA generator under BasicSR names: an ordinary
model file for ``vidsr --model`` and ``vidsr interpolate``. Nothing is printed: progress goes
to the ``on_progress`` callback.
"""

# Strict typing, less the unknown-type checks: torch types backward(), optimizer steps and fork_rng only in part.
# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidsr.errors import SettingsError
from vidsr.models import LoadedModel
from vidsr.train.checkpoint import (
    OutLock,
    atomic_write,
    describe_changes,
    export_weights,
    plain,
    prepare_out,
    read_checkpoint,
)
from vidsr.train.config import Stage, TrainConfig
from vidsr.train.data import (
    PatchSampler,
    TrainingPictures,
    collect_pictures,
)
from vidsr.train.discriminator import build_discriminator
from vidsr.train.losses import (
    PerceptualLoss,
    l1_loss,
    ragan_discriminator_loss,
    ragan_generator_loss,
)
from vidsr.train.metrics import psnr, ssim, upscale_bicubic
from vidsr.upscale import cpu_has_native_bf16, select_device

CHECKPOINT_NAME = "checkpoint.pt"
WEIGHTS_NAME = "model.safetensors"
CHECKPOINT_FORMAT = "vidsr-train-checkpoint/1"
# The learning rate halves once the run passes each of these fractions of its steps.
HALVING_POINTS: dict[str, tuple[float, ...]] = {"psnr": (0.2, 0.4, 0.6, 0.8), "gan": (0.125, 0.25, 0.5, 0.75)}
BASE_LEARNING_RATE: dict[str, float] = {"psnr": 2e-4, "gan": 1e-4}
ADAM_BETAS = (0.9, 0.999)  # the paper's
MIN_PATCH = 16


@dataclass(frozen=True)
class Validation:
    """Scores of the EMA generator on the fixed held-out patches, with bicubic for reference (dB, 0..1)."""

    step: int
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float


@dataclass(frozen=True)
class TrainProgress:
    """What ``on_progress`` receives after each step (and once before the first, with no losses)."""

    step: int
    steps: int
    resumed_from: int
    losses: dict[str, float]
    learning_rate: float
    seconds: float  # wall time of this call so far
    validation: Validation | None  # the latest
    checkpointed: bool  # a checkpoint was written at this step


@dataclass(frozen=True)
class TrainResult:
    weights: Path  # the EMA generator, an ordinary model file
    checkpoint: Path
    steps: int
    resumed_from: int
    seconds: float
    history: tuple[Validation, ...]
    held_out: bool  # False: too few pictures to hold any out; validation used training pictures
    train_pictures: int
    validation_pictures: int
    architecture: str
    hyperparameters: dict[str, Any]


ProgressCallback = Callable[[TrainProgress], None]


def train(config: TrainConfig, *, on_progress: ProgressCallback | None = None) -> TrainResult:
    """Run (or continue) the training ``config`` describes and export the EMA weights.

    Raises InputError for bad data, SettingsError for impossible settings or a checkpoint in
    ``out`` from a different setup, ModelError for a bad ``from_model`` or VGG file, OutputError
    if ``out`` cannot be written or another process is training into it. Ctrl-C (KeyboardInterrupt)
    passes through; the last checkpoint stays, and the same call continues from it.
    """
    _check_numbers(config)
    started = time.monotonic()
    device = _device(config.device)
    training_precision(config.precision, device)  # a bad name is refused before any work
    out = prepare_out(config.out)
    with OutLock(out):
        # Cheapest checks first: a missing VGG or a bad patch size is refused before any data is read.
        perceptual = _perceptual_loss(config)
        generator, identity = _build_generator(config)
        _check_patch(config, identity["scale"], size_multiple=getattr(generator, "unshuffle", 1))
        discriminator = _discriminator(config) if config.stage == "gan" else None
        pictures = collect_pictures(
            config.data,
            min_size=config.patch,
            frames_per_video=config.frames_per_video,
            val_fraction=config.val_fraction,
        )
        identity["data"] = pictures.fingerprint
        run = _Run(config, identity, generator, discriminator, perceptual, pictures, device)
        run.restore_or_start(out / CHECKPOINT_NAME)
        return run.loop(out, started, on_progress or (lambda progress: None))


# ---------------------------------------------------------------------------- the run


class _Run:
    """The networks, optimisers and data of one run, and the loop over its steps."""

    def __init__(
        self,
        config: TrainConfig,
        identity: dict[str, Any],
        generator: nn.Module,
        discriminator: nn.Module | None,
        perceptual: PerceptualLoss | None,
        pictures: TrainingPictures,
        device: torch.device,
    ) -> None:
        self.config = config
        self.identity = identity
        self.device = device
        self.precision = training_precision(config.precision, device)
        self.generator = _channels_last(generator.to(device)).train()
        self.ema = copy.deepcopy(self.generator).requires_grad_(False).eval()
        self.perceptual = perceptual.to(device) if perceptual is not None else None
        self.base_lr = _base_learning_rate(config)
        self.optimizer_g = torch.optim.Adam(self.generator.parameters(), lr=self.base_lr, betas=ADAM_BETAS)
        self.adversary: _Adversary | None = None
        if discriminator is not None:
            network = _channels_last(discriminator.to(device)).train()
            optimizer = torch.optim.Adam(network.parameters(), lr=self.base_lr, betas=ADAM_BETAS)
            self.adversary = _Adversary(network, optimizer)
        self.pictures = pictures
        self.sampler = PatchSampler(
            pictures.train,
            patch=config.patch,
            scale=identity["scale"],
            degradation=config.degradation,
            augment=config.augment,
        )
        self.data_rng = torch.Generator().manual_seed(config.seed)
        self.val_lr, self.val_hr = _validation_patches(config, pictures, identity["scale"])
        self.step = 0
        self.resumed_from = 0
        self.history: list[Validation] = []

    # ---- checkpoint

    def restore_or_start(self, path: Path) -> None:
        if self.config.restart:
            # Gone now, so a restarted run killed before its first checkpoint cannot resume the old one.
            path.unlink(missing_ok=True)
            return
        if not path.exists():
            return
        state = read_checkpoint(path)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise SettingsError(f"{path} is not a vidsr training checkpoint; use another --out, or --restart")
        changes = [
            change
            for change in describe_changes(state["identity"], plain(self.identity))
            if not change.startswith("from:")  # the same model may be named by another path: its hash decides
        ]
        if changes:
            raise SettingsError(
                f"{path} belongs to a different training run ({'; '.join(changes[:4])}); "
                "use another --out, or --restart to start this one over"
            )
        self.generator.load_state_dict(state["generator"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer_g.load_state_dict(state["optimizer_g"])
        if self.adversary is not None:
            self.adversary.network.load_state_dict(state["discriminator"])
            self.adversary.optimizer.load_state_dict(state["optimizer_d"])
        self.data_rng.set_state(state["data_rng"])
        self.step = self.resumed_from = int(state["step"])
        self.history = [Validation(**entry) for entry in state["history"]]

    def save(self, out: Path) -> None:
        state = {
            "format": CHECKPOINT_FORMAT,
            "identity": plain(self.identity),
            "step": self.step,
            "generator": self.generator.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer_g": self.optimizer_g.state_dict(),
            "discriminator": self.adversary.network.state_dict() if self.adversary is not None else {},
            "optimizer_d": self.adversary.optimizer.state_dict() if self.adversary is not None else {},
            "data_rng": self.data_rng.get_state(),
            "history": [asdict(entry) for entry in self.history],
        }
        # Weights first: a checkpoint at step N never comes with older exported weights.
        export_weights(self.ema, out / WEIGHTS_NAME, metadata=self._metadata())
        atomic_write(out / CHECKPOINT_NAME, lambda handle: torch.save(state, handle))

    def _metadata(self) -> dict[str, str]:
        latest = self.history[-1] if self.history else None
        summary = {"step": self.step, **plain(self.identity)}
        if latest is not None:
            summary["validation"] = asdict(latest)
        return {"vidsr_training": json.dumps(summary, sort_keys=True)}

    # ---- the loop

    def loop(self, out: Path, started: float, on_progress: ProgressCallback) -> TrainResult:
        config = self.config
        if self.step == 0 and not self.history:
            self.history.append(self.validate())
        on_progress(self._progress({}, started, checkpointed=False))
        last_save = time.monotonic()
        while self.step < config.steps:
            self.step += 1
            learning_rate = learning_rate_at(self.step, config.steps, self.base_lr, config.stage)
            optimizers = [self.optimizer_g] + ([self.adversary.optimizer] if self.adversary is not None else [])
            for optimizer in optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate
            losses = self.train_step()
            _ema_update(self.ema, self.generator, _ema_decay(config.ema_decay, self.step))
            if self.step % config.val_every == 0 or self.step == config.steps:
                self.history.append(self.validate())
            due = (
                self.step % config.checkpoint_every == 0
                or time.monotonic() - last_save >= 60 * config.checkpoint_minutes
            )
            if due or self.step == config.steps:
                self.save(out)
                last_save = time.monotonic()
            on_progress(self._progress(losses, started, checkpointed=due or self.step == config.steps))
        if not (out / WEIGHTS_NAME).exists() or self.resumed_from >= config.steps:
            self.save(out)  # a run that was already complete: make sure its weights are there
        return TrainResult(
            weights=out / WEIGHTS_NAME,
            checkpoint=out / CHECKPOINT_NAME,
            steps=self.step,
            resumed_from=self.resumed_from,
            seconds=time.monotonic() - started,
            history=tuple(self.history),
            held_out=self.pictures.held_out,
            train_pictures=len(self.pictures.train),
            validation_pictures=len(self.pictures.validation) if self.pictures.held_out else 0,
            architecture=self.identity["architecture"],
            hyperparameters=dict(self.identity["hyperparameters"]),
        )

    def _mixed(self) -> contextlib.AbstractContextManager[object]:
        """Forward passes in bf16 where chosen (autocast); the losses are taken in fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def train_step(self) -> dict[str, float]:
        lr, hr = (t.to(self.device) for t in self.sampler.batch(self.config.batch, self.data_rng))
        lr = lr.contiguous(memory_format=torch.channels_last)
        if self.adversary is None:
            with self._mixed():
                output = self.generator(lr)
            loss = l1_loss(output.float(), hr)
            self.optimizer_g.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer_g.step()
            return {"l1": loss.item()}
        return self._gan_step(lr, hr, self.adversary)

    def _gan_step(self, lr: torch.Tensor, hr: torch.Tensor, adversary: _Adversary) -> dict[str, float]:
        config, discriminator = self.config, adversary.network
        # Generator: content + perceptual + relativistic adversarial, discriminator frozen.
        discriminator.requires_grad_(False)
        with self._mixed():
            output = self.generator(lr)
            real_logits = discriminator(hr).detach().float()
            fake_logits = discriminator(output).float()
            perceptual = self.perceptual(output, hr).float() if self.perceptual is not None else None
        output = output.float()
        pixel = l1_loss(output, hr)
        adversarial = ragan_generator_loss(real_logits, fake_logits)
        total = config.pixel_weight * pixel + config.adversarial_weight * adversarial
        losses = {"l1": pixel.item(), "gan": adversarial.item()}
        if perceptual is not None:
            total = total + config.perceptual_weight * perceptual
            losses["percep"] = perceptual.item()
        self.optimizer_g.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer_g.step()
        # Discriminator: real versus the (detached) output it was just shown.
        discriminator.requires_grad_(True)
        with self._mixed():
            real_logits, fake_logits = discriminator(hr).float(), discriminator(output.detach()).float()
        d_loss = ragan_discriminator_loss(real_logits, fake_logits)
        adversary.optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        adversary.optimizer.step()
        losses["d"] = d_loss.item()
        return losses

    @torch.no_grad()
    def validate(self) -> Validation:
        outputs: list[torch.Tensor] = []
        for start in range(0, len(self.val_lr), self.config.batch):
            chunk = self.val_lr[start : start + self.config.batch].to(self.device)
            outputs.append(self.ema(chunk).float().cpu())
        # Scored as saved images would be: clipped and rounded to 8 bits.
        output = (torch.cat(outputs).clamp(0, 1) * 255).round() / 255
        bicubic = (upscale_bicubic(self.val_lr, self.identity["scale"]) * 255).round() / 255
        return Validation(
            step=self.step,
            psnr=psnr(output, self.val_hr).mean().item(),
            ssim=ssim(output, self.val_hr).mean().item(),
            bicubic_psnr=psnr(bicubic, self.val_hr).mean().item(),
            bicubic_ssim=ssim(bicubic, self.val_hr).mean().item(),
        )

    def _progress(self, losses: dict[str, float], started: float, *, checkpointed: bool) -> TrainProgress:
        config = self.config
        return TrainProgress(
            step=self.step,
            steps=config.steps,
            resumed_from=self.resumed_from,
            losses=losses,
            learning_rate=learning_rate_at(max(self.step, 1), config.steps, self.base_lr, config.stage),
            seconds=time.monotonic() - started,
            validation=self.history[-1] if self.history else None,
            checkpointed=checkpointed,
        )


# ---------------------------------------------------------------------------- schedule and EMA


def _base_learning_rate(config: TrainConfig) -> float:
    return BASE_LEARNING_RATE[config.stage] if config.learning_rate is None else config.learning_rate


def learning_rate_at(step: int, steps: int, base: float, stage: Stage) -> float:
    """The paper's step schedule scaled to ``steps``: ``base`` halved at each point passed."""
    passed = sum(step > round(point * steps) for point in HALVING_POINTS[stage])
    return base * 0.5**passed


def _ema_decay(target: float, step: int) -> float:
    # Warm-up (as TensorFlow's ExponentialMovingAverage): a fine-tune of a few hundred steps would
    # otherwise export weights still ~90 % those it started from.
    return min(target, (1 + step) / (10 + step))


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for average, current in zip(ema.parameters(), model.parameters()):
        average.lerp_(current, 1.0 - decay)
    for average, current in zip(ema.buffers(), model.buffers()):
        average.copy_(current)


def _validation_patches(
    config: TrainConfig, pictures: TrainingPictures, scale: int
) -> tuple[torch.Tensor, torch.Tensor]:
    # Drawn with their own fixed seed, without augmentation: the same patches at every validation
    # and in every resumed run.
    sampler = PatchSampler(
        pictures.validation, patch=config.patch, scale=scale, degradation=config.degradation, augment=False
    )
    return sampler.batch(config.val_patches, torch.Generator().manual_seed(config.seed + 1))


# ---------------------------------------------------------------------------- building


def _build_generator(config: TrainConfig) -> tuple[nn.Module, dict[str, Any]]:
    """The network to train, and what identifies it for resume and export."""
    from vidsr.models import resolve_model
    from vidsr.models.arch import RRDBNet

    if config.from_model is not None:
        loaded: LoadedModel = resolve_model(config.from_model)
        if config.scale is not None and config.scale != loaded.scale:
            raise SettingsError(
                f"{loaded.name} is a x{loaded.scale} model; fine-tuning keeps its architecture, "
                f"so drop --scale {config.scale} or pass --scale {loaded.scale}"
            )
        module = loaded.module.requires_grad_(True)
        identity = {
            "architecture": loaded.architecture,
            "hyperparameters": dict(loaded.hyperparameters),
            "from": config.from_model,
            "from_hash": loaded.content_hash,
            "scale": loaded.scale,
        }
    else:
        scale = 4 if config.scale is None else config.scale
        if scale not in (1, 2, 4):
            raise SettingsError(f"a fresh RRDBNet can be x4, x2 or x1, not x{scale}")
        hyperparameters: dict[str, Any] = {  # recorded in checkpoints as they are: plain JSON values
            "num_in_ch": 3,
            "num_out_ch": 3,
            "scale": scale,
            "num_feat": config.features,
            "num_block": config.blocks,
            "num_grow_ch": max(1, config.features // 2),
        }
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            module = RRDBNet(**hyperparameters)
            _init_like_basicsr(module)
        identity = {
            "architecture": "RRDBNet",
            "hyperparameters": hyperparameters,
            "from": None,
            "from_hash": None,
            "scale": scale,
        }
    identity |= {
        "stage": config.stage,
        "patch": config.patch,
        "degradation": config.degradation,
        "augment": config.augment,
        "seed": config.seed,
        "learning_rate": _base_learning_rate(config),
        "perceptual": config.stage == "gan" and config.perceptual,
        "perceptual_layers": dict(config.perceptual_layers) if config.stage == "gan" and config.perceptual else {},
        "discriminator": config.discriminator if config.stage == "gan" else None,
    }
    return module, identity


@dataclass(frozen=True)
class _Adversary:
    """The GAN stage's discriminator and its optimizer."""

    network: nn.Module
    optimizer: torch.optim.Optimizer


def _channels_last(module: nn.Module) -> nn.Module:
    # torch's stubs leave memory_format out of Module.to's overloads; it is accepted all the same.
    return module.to(memory_format=torch.channels_last)  # pyright: ignore[reportCallIssue]


@torch.no_grad()
def _init_like_basicsr(network: nn.Module) -> None:
    """Kaiming init scaled by 0.1 inside the dense blocks, as BasicSR: each residual starts
    small, so the 23-block trunk begins close to identity and trains stably."""
    from vidsr.models.arch.rrdbnet import ResidualDenseBlock

    for block in network.modules():
        if isinstance(block, ResidualDenseBlock):
            for conv in (block.conv1, block.conv2, block.conv3, block.conv4, block.conv5):
                nn.init.kaiming_normal_(conv.weight)
                conv.weight.mul_(0.1)
                if conv.bias is not None:
                    conv.bias.zero_()


def _perceptual_loss(config: TrainConfig) -> PerceptualLoss | None:
    if config.stage != "gan" or not config.perceptual:
        return None
    if config.vgg is None:
        raise SettingsError(
            "the gan stage's perceptual loss needs VGG19 weights, which vidsr never downloads: pass "
            "--vgg PATH (torchvision's vgg19-dcbb9e9d.pth or any state dict with features.N.weight keys), "
            "or --no-perceptual to train without that loss"
        )
    from vidsr.train.vgg import load_vgg19

    vgg = load_vgg19(config.vgg, layers=tuple(config.perceptual_layers))
    return PerceptualLoss(vgg, layer_weights=config.perceptual_layers)


def _discriminator(config: TrainConfig) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + 2)
        return build_discriminator(config.discriminator, patch=config.patch, num_feat=config.discriminator_features)


def _check_numbers(config: TrainConfig) -> None:
    for name in ("steps", "batch", "val_patches", "val_every", "checkpoint_every", "frames_per_video"):
        if getattr(config, name) < 1:
            raise SettingsError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= config.val_fraction < 1:
        raise SettingsError("the held-out fraction must be at least 0 and below 1")
    if config.stage not in HALVING_POINTS:
        raise SettingsError(f"unknown stage {config.stage!r}; use psnr or gan")


def _check_patch(config: TrainConfig, scale: int, *, size_multiple: int) -> None:
    if config.patch < MIN_PATCH:
        raise SettingsError(f"--patch must be at least {MIN_PATCH} pixels, not {config.patch}")
    if config.patch % (scale * size_multiple):
        raise SettingsError(
            f"--patch {config.patch} must be a multiple of {scale * size_multiple} for this x{scale} model"
        )


TRAINING_PRECISIONS = ("auto", "fp32", "bf16")


def training_precision(name: str, device: torch.device) -> str:
    """fp32, or bf16 mixed precision (forward passes in bf16, weights, gradients' updates and
    losses in fp32). auto: bf16 where the hardware computes it natively, measured 1.4x (compact)
    to 2.1x (RRDB) the steps a second of fp32 on a CPU with AVX512-BF16."""
    if name not in TRAINING_PRECISIONS:
        raise SettingsError(f"--precision {name}: choose one of {', '.join(TRAINING_PRECISIONS)}")
    if name != "auto":
        return name
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def _device(name: str) -> torch.device:
    """As for upscaling, except that "auto" does not pick MPS: training there is unmeasured."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("vulkan"):
        raise SettingsError("vidsr train runs on torch: --device cpu, cuda or mps (Vulkan is for upscaling)")
    return select_device(name)
