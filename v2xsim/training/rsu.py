"""Training of GBA-RSU and its RSU-side ablations on FLASH-like drops of the geometric
world (seed 002, Section III-C, stages 1 and 3).

Stage 1: ground-truth feedback, loss = minus the sum rate with the true channels, random
vehicle dropping (``p_drop``). Stage 3 (``stage3_steps > 0``; off by default): retraining
on a mix of true feedback and "predicted" feedback (true feedback through an error model)
with random bit flips (``p_error``). Trained networks live in the model store
(:class:`v2xsim.store.ModelStore`) under a hash of the training configuration; an
interrupted training resumes from its last partial checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from v2xsim import build
from v2xsim.cache import config_hash
from v2xsim.config import BlockersConfig, RadioConfig, RoadConfig
from v2xsim.geometry import random_drop
from v2xsim.metrics import binary_feedback
from v2xsim.models.gba_rsu import GBARSU
from v2xsim.models.rates import sum_rate as torch_sum_rate
from v2xsim.models.rsu_variants import MLPRSU, TransformerRSU
from v2xsim.progress import report, report_every_s, silenced
from v2xsim.store import Checkpoint, ModelStore
from v2xsim.threads import TRAINING_TORCH_THREADS, torch_threads

ARCHITECTURES = ("gnn", "mlp", "transformer")
STAGE3_FEEDBACK = ("error_model", "vehicle")
SCHEDULES = ("one_cycle", "constant")
#: training profiles: "cpu" (the defaults below: minutes on two cores) and "paper" (seed
#: 002, Section V-B: hidden 384, AdamW at a constant 1e-3, batch 2048, the sum-rate loss
#: alone, 30 000 steps for training and 30 000 for retraining; hours to days on a CPU)
RSU_PROFILES: dict[str, dict[str, Any]] = {
    "cpu": {},
    "paper": {"hidden": 384, "lr": 1e-3, "schedule": "constant", "batch_size": 2048, "beam_ce": 0.0,
              "steps": 30_000, "stage3_lr": 1e-3, "p_drop": 0.25, "p_error": 0.2},
}
#: stage-3 (retraining) steps of each profile
RSU_PROFILE_STAGE3_STEPS = {"cpu": 1000, "paper": 30_000}
#: fields added after checkpoints were first named: left out of the name at these values,
#: so that earlier configurations keep their cached networks
_KEY_DEFAULTS = {"stage3_feedback": "error_model", "stage3_source": "", "schedule": "one_cycle"}


def rsu_training_options(options: dict[str, Any]) -> dict[str, Any]:
    """:class:`RSUTrainingConfig` keyword arguments from ``options``, whose ``profile``
    (default "cpu") supplies defaults that the other options override."""
    options = dict(options)
    profile = options.pop("profile", "cpu")
    if profile not in RSU_PROFILES:
        raise ValueError(f"profile must be one of {', '.join(RSU_PROFILES)}, got {profile!r}")
    return {**RSU_PROFILES[profile], **options}
CHECKPOINT_FORMAT = 2
#: steps between partial checkpoints
CHECKPOINT_EVERY_STEPS = 250
#: seconds between progress lines
PROGRESS_EVERY_S = 2.0
#: offset between the seeds of the training and the held-out test drops
TEST_SEED_OFFSET = 10_000


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """FLASH-like drops: K cars at random on the covered road, with blockers.

    The road and radio sections are those of a scenario file (defaults: the headline).
    """

    road: dict[str, Any] = field(default_factory=lambda: RoadConfig().model_dump())
    radio: dict[str, Any] = field(default_factory=lambda: RadioConfig().model_dump())
    blockers: dict[str, Any] = field(default_factory=lambda: BlockersConfig().model_dump())
    trucks: int = 1
    num_vehicles: tuple[int, ...] = tuple(range(1, 11))
    samples_per_k: int = 2000
    drops_per_channel_seed: int = 50
    seed: int = 0

    def key(self) -> str:
        return config_hash(asdict(self))


@dataclass(frozen=True, kw_only=True)
class RSUTrainingConfig:
    """Everything that defines a trained RSU network (its hash names the checkpoint).

    Attributes:
        architecture: "gnn" (GBA-RSU), "mlp" (one K, ``num_vehicles`` must hold one value)
            or "transformer".
        hidden: hidden size (seed 002 uses 384).
        steps: stage-1 optimiser steps. stage3_steps: stage-3 steps (0 = none). 1500: on
            the headline's held-out drops (all K), two training seeds rated 12.05 / 12.06
            bit/s/Hz after 1500 steps against 11.98 / 11.90 after 3000 (the one-cycle
            schedule adapts to the total; K = 10 alone: 15.09 / 14.95 vs 14.92 / 15.21).
        batch_size: graphs per step. lr: peak AdamW learning rate of the schedule.
        schedule: "one_cycle" (warm-up then cosine decay: converges in the CPU profile's
            few steps) or "constant" (seed 002: 1e-3 throughout); see :data:`RSU_PROFILES`.
        beam_ce: weight of an auxiliary cross-entropy pulling each vehicle's beam scores
            towards its strongest true beam (known at training time); 0 = the paper's loss
            alone. beam_ce_temperature: softmax temperature of that term.
        random_dropping: drop each vehicle with ``p_drop`` per sample (stage 1 and 3).
        non_negative, renormalise: beam-projection switches (Table III).
        prediction_error: bit-flip probability of the stand-in "predicted" feedback (stage 3).
        p_error: bit-flip augmentation probability of stage 3.
        stage3_feedback: what stage 3 mixes with the true feedback: "error_model" (the
            stand-in above, on stage 1's drops, in the same run) or "vehicle" (GBA-Vehicle's
            predictions on the vehicles' own snapshots, retraining the finished stage-1
            network: :mod:`v2xsim.training.stage3`).
        stage3_source: what the "vehicle" stage 3 was built from (data set and GBA-Vehicle
            checkpoint); part of the checkpoint name, set by :mod:`v2xsim.training.stage3`.
    """

    architecture: str = "gnn"
    hidden: int = 128
    temperature: float = 0.1
    non_negative: bool = True
    renormalise: bool = True
    steps: int = 1500
    batch_size: int = 256
    lr: float = 2e-3
    schedule: str = "one_cycle"
    beam_ce: float = 0.3
    beam_ce_temperature: float = 0.1
    random_dropping: bool = True
    p_drop: float = 0.25
    stage3_steps: int = 0
    stage3_lr: float = 1e-3
    prediction_error: float = 0.05
    p_error: float = 0.2
    stage3_feedback: str = "error_model"
    stage3_source: str = ""
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}")
        if self.architecture == "mlp" and len(self.data.num_vehicles) != 1:
            raise ValueError("architecture 'mlp' is trained for one K: data.num_vehicles must hold one value")
        for name in ("p_drop", "prediction_error", "p_error"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.stage3_feedback not in STAGE3_FEEDBACK:
            raise ValueError(f"stage3_feedback must be one of {', '.join(STAGE3_FEEDBACK)}, "
                             f"got {self.stage3_feedback!r}")
        if self.stage3_steps < 0:
            raise ValueError(f"stage3_steps must be >= 0, got {self.stage3_steps}")
        for name in ("hidden", "batch_size", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def key(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if not (k in _KEY_DEFAULTS and v == _KEY_DEFAULTS[k])}
        return config_hash({"format": CHECKPOINT_FORMAT, **fields})


# --------------------------------------------------------------------- data
@dataclass
class DropSet:
    """Padded drops in normalised units (noise power 1 W).

    Attributes:
        channels: (N, Kmax, Nt) complex64, ``h / sqrt(noise)``, vehicles sorted along the road.
        beam_space: (N, Kmax, W) complex64, ``h^H c_w`` in the same units.
        feedback: (N, Kmax, W) float32 0/1.
        mask: (N, Kmax) bool, real vehicles.
        p_max: power budget [W]; threshold: feedback threshold in noise units.
        codebook: (Nt, W).
        predicted: (N, Kmax, W) float32 0/1 feedback GBA-Vehicle predicted for the same
            vehicles (stage 3 on the vehicles' own data), or None.
    """

    channels: np.ndarray
    beam_space: np.ndarray
    feedback: np.ndarray
    mask: np.ndarray
    p_max: float
    threshold: float
    codebook: np.ndarray
    predicted: np.ndarray | None = None

    def subset(self, index: np.ndarray) -> "DropSet":
        return replace(self, channels=self.channels[index], beam_space=self.beam_space[index],
                       feedback=self.feedback[index], mask=self.mask[index],
                       predicted=None if self.predicted is None else self.predicted[index])

    def with_k(self, num_vehicles: int) -> "DropSet":
        """Drops with exactly ``num_vehicles`` cars, trimmed to that width."""
        rows = np.flatnonzero(self.mask.sum(axis=1) == num_vehicles)
        sub = self.subset(rows)
        return replace(sub, channels=sub.channels[:, :num_vehicles], beam_space=sub.beam_space[:, :num_vehicles],
                       feedback=sub.feedback[:, :num_vehicles], mask=sub.mask[:, :num_vehicles])


def make_drops(data: DataConfig, *, samples_per_k: int | None = None, seed: int | None = None) -> DropSet:
    """Generate FLASH-like drops for every K of ``data`` (deterministic in the seed)."""
    road, radio_config = RoadConfig(**data.road), RadioConfig(**data.radio)
    site = build.site(road, radio_config)
    layout, radio = site.layout, site.radio
    count = samples_per_k or data.samples_per_k
    rng = np.random.default_rng([data.seed if seed is None else seed, 7])
    k_max = max(data.num_vehicles)
    nt, width = radio.codebook.shape
    total = count * len(data.num_vehicles)
    channels = np.zeros((total, k_max, nt), dtype=np.complex64)
    mask = np.zeros((total, k_max), dtype=bool)
    scale = 1.0 / np.sqrt(radio.noise_power)
    channel = None
    row = 0
    for num in data.num_vehicles:
        for sample in range(count):
            if channel is None or sample % data.drops_per_channel_seed == 0:
                channel = build.channel_backend("geometric", {}, layout=layout, radio=radio_config,
                                                seed=int(rng.integers(2**31)))
            drop = random_drop(rng, layout, num, num_trucks=data.trucks,
                               num_pedestrians=data.blockers["pedestrians"],
                               num_parked_cars=data.blockers["parked_cars"])
            order = np.argsort(drop.positions[:, 0])  # canonical order: along the road
            h = channel.channels(drop.positions, drop.obstacles, drop.ids)[order]
            channels[row, :num] = h * scale
            mask[row, :num] = True
            row += 1
    return drops_from_channels(channels, mask, radio)


def drops_from_channels(channels: np.ndarray, mask: np.ndarray, radio, *,
                        predicted: np.ndarray | None = None) -> DropSet:
    """A :class:`DropSet` of noise-normalised channels (N, Kmax, Nt) (``h / sqrt(noise)``)
    with ``mask`` (N, Kmax) of real vehicles, for ``radio`` (a :class:`v2xsim.radio.Radio`):
    beam-space channels and the true feedback above the radio's threshold."""
    channels = np.asarray(channels, dtype=np.complex64)
    beam_space = (channels.conj() @ radio.codebook.astype(np.complex64)).astype(np.complex64)
    threshold = radio.feedback_threshold / radio.noise_power
    feedback = binary_feedback(radio.p_max * np.abs(beam_space) ** 2, threshold).astype(np.float32) * mask[..., None]
    if predicted is not None:
        predicted = np.asarray(predicted, dtype=np.float32) * mask[..., None]
    return DropSet(channels, beam_space, feedback, mask, radio.p_max, threshold, radio.codebook, predicted)


def cached_drops(data: DataConfig, *, split: str = "train", store: ModelStore | None = None) -> DropSet:
    """Training (or test) drops, generated once and kept in the store as .npz."""
    store = store or ModelStore()
    seed = data.seed if split == "train" else data.seed + TEST_SEED_OFFSET
    count = data.samples_per_k if split == "train" else max(50, data.samples_per_k // 10)
    path = store.path(f"drops-{data.key()}-{split}.npz")
    if path.exists():
        with np.load(path) as f:
            return DropSet(f["channels"], f["beam_space"], f["feedback"], f["mask"], float(f["p_max"]),
                           float(f["threshold"]), f["codebook"])
    drops = make_drops(data, samples_per_k=count, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, channels=drops.channels, beam_space=drops.beam_space, feedback=drops.feedback, mask=drops.mask,
             p_max=drops.p_max, threshold=drops.threshold, codebook=drops.codebook)
    tmp.replace(path)
    return drops


# -------------------------------------------------------------------- models
def build_model(config: RSUTrainingConfig, num_beams: int) -> torch.nn.Module:
    if config.architecture == "gnn":
        return GBARSU(num_beams=num_beams, hidden=config.hidden, temperature=config.temperature,
                      non_negative=config.non_negative, renormalise=config.renormalise)
    if config.architecture == "mlp":
        return MLPRSU(num_beams=num_beams, num_vehicles=config.data.num_vehicles[0], hidden=config.hidden,
                      temperature=config.temperature)
    return TransformerRSU(num_beams=num_beams, hidden=config.hidden, temperature=config.temperature)


def flip_bits(feedback: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """XOR every bit with an independent Bernoulli(probability) error."""
    if probability == 0:
        return feedback
    errors = torch.rand(feedback.shape, generator=generator) < probability
    return torch.where(errors, 1.0 - feedback, feedback)


def _as_tensors(drops: DropSet, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(drops.feedback[rows]), torch.from_numpy(drops.beam_space[rows]),
            torch.from_numpy(drops.mask[rows]))


def _train_steps(model, optimizer, scheduler, drops: DropSet, config: RSUTrainingConfig, *, start: int, stop: int,
                 generator: torch.Generator, stage: int, save, progress) -> None:
    num = len(drops.mask)
    for step in range(start, stop):
        rows = torch.randint(num, (config.batch_size,), generator=generator).numpy()
        feedback, beam_space, mask = _as_tensors(drops, rows)
        if stage == 3:
            # half the samples carry predicted feedback (GBA-Vehicle's, when the drops hold
            # it; else the stand-in error model), then every sample gets the p_error
            # bit-flip augmentation
            if drops.predicted is not None:
                predicted = torch.from_numpy(drops.predicted[rows])
            else:
                predicted = flip_bits(feedback, config.prediction_error, generator)
            use_predicted = (torch.rand(config.batch_size, generator=generator) < 0.5)[:, None, None]
            feedback = flip_bits(torch.where(use_predicted, predicted, feedback), config.p_error, generator)
            feedback = feedback * mask[..., None]
        if config.random_dropping and config.p_drop > 0:
            mask = mask & (torch.rand(mask.shape, generator=generator) >= config.p_drop)
        scores = model.scores(feedback, mask)
        allocation = model.projection(scores, drops.p_max, mask)
        batch_rate = torch_sum_rate(allocation, beam_space, 1.0, mask).mean()
        loss = -batch_rate
        if config.beam_ce > 0:
            heard = mask & (feedback.sum(dim=-1) > 0)
            if heard.any():
                logits = torch.sqrt(scores * scores + 1e-12) / config.beam_ce_temperature
                strongest = (beam_space.abs() ** 2).argmax(dim=-1)
                loss = loss + config.beam_ce * torch.nn.functional.cross_entropy(logits[heard], strongest[heard])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        progress(step + 1, float(batch_rate.detach()))
        if (step + 1) % CHECKPOINT_EVERY_STEPS == 0 or step + 1 == stop:
            save(step + 1)


def train_rsu(config: RSUTrainingConfig, *, store: ModelStore | None = None, quiet: bool = False,
              drops: DropSet | None = None, stop_after: int | None = None) -> torch.nn.Module:
    """The RSU network of ``config`` from the model store, trained on first use; returned
    in eval mode. Training runs on :data:`~v2xsim.threads.TRAINING_TORCH_THREADS` PyTorch
    threads whatever the machine, so the trained bits do not depend on its core count.

    ``stop_after`` ends this session after that many total steps, leaving a partial
    checkpoint that the next call resumes from (the result is then bit-identical to an
    uninterrupted run).
    """
    with torch_threads(TRAINING_TORCH_THREADS):
        return _train_rsu(config, store=store, quiet=quiet, drops=drops, stop_after=stop_after)


def rsu_checkpoint(config: RSUTrainingConfig, store: ModelStore) -> Checkpoint:
    """The store's checkpoint files of the RSU network of ``config``."""
    return store.checkpoint("rsu", config.key())


def _train_rsu(config: RSUTrainingConfig, *, store: ModelStore | None, quiet: bool, drops: DropSet | None,
               stop_after: int | None) -> torch.nn.Module:
    store = store or ModelStore()
    quiet = quiet or store.quiet or silenced()
    checkpoint = rsu_checkpoint(config, store)
    num_beams = int(config.data.radio["num_beams"])
    model = build_model(config, num_beams)
    finished = checkpoint.finished()
    if finished is not None:
        model.load_state_dict(finished["model"])
        return model.eval()
    if config.stage3_feedback == "vehicle":
        raise ValueError("an RSU network with stage3_feedback = 'vehicle' is retrained from GBA-Vehicle's "
                         "predictions: train it with v2xsim.training.stage3.retrain_rsu")
    drops = drops or cached_drops(config.data, store=store)
    torch.manual_seed(config.seed)  # parameter initialisation
    model = build_model(config, num_beams)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    scheduler = None
    if config.schedule == "one_cycle" and config.steps >= 10:  # very short runs (tests) keep a constant rate
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=config.steps, pct_start=max(0.05, 2.0 / config.steps),
            anneal_strategy="cos", div_factor=10, final_div_factor=100)
    generator = torch.Generator().manual_seed(config.seed)
    step = checkpoint.restore_progress(model=model, optimizer=optimizer, generator=generator,
                                       scheduler=scheduler).get("step", 0)
    total = config.steps + config.stage3_steps

    def save(done: int) -> None:
        checkpoint.save_progress(model=model, optimizer=optimizer, generator=generator, scheduler=scheduler,
                                 step=done)

    started = time.perf_counter()
    shown = [0.0]

    def progress(done: int, rate: float) -> None:
        now = time.perf_counter()
        if not quiet and (now - shown[0] > report_every_s(PROGRESS_EVERY_S) or done == total):
            shown[0] = now
            elapsed = now - started
            left = elapsed / max(done - step, 1) * (total - done)
            report(f"training {config.architecture} RSU: step {done}/{total}, batch sum rate {rate:.2f} "
                   f"bit/s/Hz, {elapsed:.0f} s, about {left:.0f} s left", last=done == total)

    model.train()
    if stop_after is not None and stop_after < total:
        if step < min(stop_after, config.steps):
            _train_steps(model, optimizer, scheduler, drops, config, start=step, stop=min(stop_after, config.steps),
                         generator=generator, stage=1, save=save, progress=progress)
            save(min(stop_after, config.steps))
        return model.eval()
    if step < config.steps:
        _train_steps(model, optimizer, scheduler, drops, config, start=step, stop=config.steps,
                     generator=generator, stage=1, save=save, progress=progress)
        step = config.steps
    if config.stage3_steps and step < total:
        for group in optimizer.param_groups:
            group["lr"] = config.stage3_lr  # stage 3: constant rate, as in seed 002
        _train_steps(model, optimizer, None, drops, config, start=step, stop=total, generator=generator, stage=3,
                     save=save, progress=progress)
    checkpoint.save_final({"model": model.state_dict(), "config": asdict(config), "format": CHECKPOINT_FORMAT})
    return model.eval()


# ---------------------------------------------------------------- evaluation
def over_budget_share(model: torch.nn.Module, drops: DropSet) -> float:
    """Share of ``drops`` where the network's own allocation spends more than the power
    budget (before any deployment scale-down): only variants without renormalisation can."""
    v = torch.from_numpy(np.asarray(drops.feedback, dtype=np.float32))
    mask = torch.from_numpy(drops.mask)
    with torch.inference_mode():
        power = (model(v, drops.p_max, mask=mask) ** 2).sum(dim=(1, 2))
    return float((power > drops.p_max * (1 + 1e-4)).float().mean()) if len(power) else 0.0


def rsu_sum_rates(model: torch.nn.Module, drops: DropSet, *, reorder: bool = False, seed: int = 0,
                  feedback: np.ndarray | None = None) -> np.ndarray:
    """Sum rate [bit/s/Hz] of ``model`` on every drop (true channels, noise 1).

    ``reorder`` shuffles the vehicles of every drop (the network sees a new order; the
    rate is order-free). ``feedback`` replaces the drops' true feedback (e.g. predicted).
    """
    feedback = drops.feedback if feedback is None else feedback
    v = torch.from_numpy(np.asarray(feedback, dtype=np.float32))
    a = torch.from_numpy(drops.beam_space)
    mask = torch.from_numpy(drops.mask)
    if reorder:
        generator = torch.Generator().manual_seed(seed)
        order = torch.stack([torch.randperm(v.shape[1], generator=generator) for _ in range(v.shape[0])])
        v = torch.gather(v, 1, order[..., None].expand_as(v))
        a = torch.gather(a, 1, order[..., None].expand_as(a))
        mask = torch.gather(mask, 1, order)
    rates = []
    with torch.inference_mode():
        for start in range(0, v.shape[0], 1024):
            sl = slice(start, start + 1024)
            allocation = model(v[sl], drops.p_max, mask=mask[sl])
            power = (allocation ** 2).sum(dim=(1, 2), keepdim=True)
            # deployed hardware never exceeds the budget: scale down (never up) if needed
            allocation = allocation * torch.sqrt(torch.clamp(drops.p_max / power.clamp_min(1e-30), max=1.0))
            rates.append(torch_sum_rate(allocation, a[sl], 1.0, mask[sl]))
    return torch.cat(rates).numpy().astype(float)


def feedback_sum_rates(rsu_model: torch.nn.Module, feedback: np.ndarray, channels: np.ndarray, *, p_max: float,
                       noise_power: float, codebook: np.ndarray) -> np.ndarray:
    """Sum rate [bit/s/Hz] per snapshot when GBA-RSU allocates from ``feedback``.

    Args:
        feedback: (S, K, W) 0/1 feedback the vehicles send.
        channels: (S, K, Nt) true channels [sqrt(W)].
        codebook: (Nt, W) beams; the network's row k picks vehicle k's beam (its
            non-zero entry) and power (its squared norm).
    """
    from v2xsim.metrics import precoders, sum_rate

    with torch.inference_mode():
        rows = rsu_model(torch.from_numpy(np.asarray(feedback, dtype=np.float32)), p_max).numpy().astype(float)
    rates = np.empty(len(rows))
    for s, allocation in enumerate(rows):
        power = (allocation ** 2).sum(axis=1)
        beams = np.where(power > 0, np.argmax(np.abs(allocation), axis=1), -1)
        rates[s] = sum_rate(channels[s], precoders(codebook, beams, power), noise_power)
    return rates
