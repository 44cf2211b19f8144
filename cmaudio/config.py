"""Typed configuration: dataclasses, strict dict/TOML loading and ``--set a.b=value`` overrides.

Every run and every model file carries its config as JSON. ``from_dict`` rebuilds a dataclass and
refuses unknown keys and ill-typed values with an error naming the full key (``net.channels``),
so a typo in a recipe is never silently ignored.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .audio import MelConfig, MelStats
from .errors import ConfigError

__all__ = [
    "ConfigError",
    "NetConfig",
    "PrecondConfig",
    "DataConfig",
    "ObjectiveConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "ModelConfig",
    "check_field",
    "from_dict",
    "to_dict",
    "load_config",
    "apply_overrides",
]


# ----------------------------------------------------------------------------------------------
# The dataclasses


@dataclass(frozen=True)
class NetConfig:
    """Backbone F of D(x, sigma) = c_skip x + c_out F(c_in x, c_noise, cond) (nets/)."""

    arch: Literal["unet1d", "unet2d"] = "unet1d"
    channels: int = 128  # width of the first level
    channel_mult: tuple[int, ...] = (1, 2, 2)  # one entry per resolution; time halves per level
    num_blocks: int = 2  # residual blocks per level
    attention: bool = True  # self-attention at the lowest resolution
    attn_heads: int = 4
    dropout: float = 0.0
    emb_channels: int = 0  # noise/class embedding width; 0 -> 4 * channels
    label_dropout: float = 0.0  # probability of training with the null class (enables cond=None)
    # Of a label with several factors (pitch, family), the probability that each one alone is
    # replaced by its null class, independently, on top of label_dropout's all-null rows. Without
    # it the model never sees "pitch 60, no family" in training, yet that is what the label "60"
    # asks for.
    factor_dropout: float = 0.0
    # unet1d only: width of a 2-D head over (mel, time) after the U-Net (nets.unet1d.FreqHead); 0 = none
    freq_channels: int = 0

    def __post_init__(self) -> None:
        check_field(self.channels > 0, "net.channels", "must be positive")
        check_field(self.freq_channels >= 0, "net.freq_channels", "must be >= 0")
        check_field(self.freq_channels == 0 or self.arch == "unet1d", "net.freq_channels", "applies to unet1d only")
        check_field(len(self.channel_mult) >= 1, "net.channel_mult", "needs at least one level")
        check_field(all(m > 0 for m in self.channel_mult), "net.channel_mult", "entries must be positive")
        check_field(self.num_blocks >= 1, "net.num_blocks", "must be >= 1")
        check_field(self.attn_heads >= 1, "net.attn_heads", "must be >= 1")
        check_field(0.0 <= self.dropout < 1.0, "net.dropout", "must be in [0, 1)")
        check_field(0.0 <= self.label_dropout < 1.0, "net.label_dropout", "must be in [0, 1)")
        check_field(0.0 <= self.factor_dropout < 1.0, "net.factor_dropout", "must be in [0, 1)")
        check_field(self.emb_channels >= 0, "net.emb_channels", "must be >= 0")


@dataclass(frozen=True)
class PrecondConfig:
    """Noise scalings of EDM (Karras et al. 2022, Table 1) or of consistency models (Song et al.
    2023, Appendix C): see precond.py. Defaults are the paper values."""

    kind: Literal["edm", "consistency"] = "edm"
    sigma_data: float = 0.5
    sigma_min: float = 0.002
    sigma_max: float = 80.0

    def __post_init__(self) -> None:
        check_field(self.sigma_data > 0, "precond.sigma_data", "must be positive")
        check_field(0 < self.sigma_min < self.sigma_max, "precond.sigma_min", "need 0 < sigma_min < sigma_max")


@dataclass(frozen=True)
class DataConfig:
    """Where training audio comes from (data.py)."""

    root: str = ""
    layout: Literal["auto", "folders", "manifest", "nsynth", "ljspeech"] = "auto"
    manifest: str = ""  # path of a manifest file when layout = "manifest" (relative to root)
    label_fields: tuple[str, ...] = ("label",)  # () for unconditional
    split: str = "train"
    seconds: float = 1.0
    cache: bool = True
    gain_db: float = 0.0  # random gain augmentation range (+-), applied in the log-mel domain

    def __post_init__(self) -> None:
        check_field(self.seconds > 0, "data.seconds", "must be positive")
        check_field(self.gain_db >= 0, "data.gain_db", "must be >= 0")

    @staticmethod
    def upgrade(data: dict, prefix: str) -> dict:
        """Older run configs carry num_workers, which nothing read (the data live in memory)."""
        return {k: v for k, v in data.items() if k != "num_workers"}


@dataclass(frozen=True)
class EDMObjectiveConfig:
    """[objective.edm]: the lognormal sigma distribution (Karras et al. 2022, Table 1)."""

    P_mean: float = -1.2
    P_std: float = 1.2

    def __post_init__(self) -> None:
        check_field(self.P_std > 0, "objective.edm.P_std", "must be > 0")


@dataclass(frozen=True)
class CDObjectiveConfig:
    """[objective.cd]: consistency distillation (Song et al. 2023, Alg. 2) on an N-level grid."""

    N: int = 50
    mu: float = 0.95  # target EMA rate; 0 makes the target the stop-gradient student
    rho: float = 7.0
    # Classifier-free guidance scale w of the teacher's ODE step (objectives.GuidedDenoiser);
    # 1 distils the unguided teacher. Needs a teacher trained with net.label_dropout > 0.
    guidance: float = 1.0

    def __post_init__(self) -> None:
        check_field(self.N >= 2, "objective.cd.N", "must be >= 2")
        check_field(0.0 <= self.mu < 1.0, "objective.cd.mu", "must be in [0, 1)")
        check_field(self.guidance >= 0, "objective.cd.guidance", "must be >= 0")


@dataclass(frozen=True)
class ICTObjectiveConfig:
    """[objective.ict]: the iCT curriculum (Song & Dhariwal 2023, eq. 5), lognormal levels (eq. 6)."""

    s0: int = 10
    s1: int = 1280
    P_mean: float = -1.1
    P_std: float = 2.0
    rho: float = 7.0

    def __post_init__(self) -> None:
        check_field(1 <= self.s0 <= self.s1, "objective.ict.s0", "need 1 <= s0 <= s1")
        check_field(self.P_std > 0, "objective.ict.P_std", "must be > 0")


@dataclass(frozen=True)
class ECTObjectiveConfig:
    """[objective.ect]: ECT's gap r = t (1 - q^-(stage+1) n(t)), a stage every stage_steps (Geng et al. 2024)."""

    q: float = 2.0
    stage_steps: int = 1000
    start_stage: int = 0  # > 0 starts at a smaller gap (fitting.stages: fit --from starts at 0)
    P_mean: float = -1.1
    P_std: float = 2.0

    def __post_init__(self) -> None:
        check_field(self.q > 1, "objective.ect.q", "must be > 1")
        check_field(self.stage_steps >= 1, "objective.ect.stage_steps", "must be >= 1")
        check_field(self.start_stage >= 0, "objective.ect.start_stage", "must be >= 0")
        check_field(self.P_std > 0, "objective.ect.P_std", "must be > 0")


# Keys of the flat [objective] table of before 2026-12 and where each lives now.
LEGACY_OBJECTIVE_KEYS = {
    "P_mean": ("edm", "P_mean"),
    "P_std": ("edm", "P_std"),
    "N": ("cd", "N"),
    "mu": ("cd", "mu"),
    "guidance": ("cd", "guidance"),
    "rho": ("cd", "rho"),  # and ict.rho: one rho served both grids
    "s0": ("ict", "s0"),
    "s1": ("ict", "s1"),
    "ict_P_mean": ("ict", "P_mean"),
    "ict_P_std": ("ict", "P_std"),
    "ect_q": ("ect", "q"),
    "ect_stage_steps": ("ect", "stage_steps"),
    "ect_P_mean": ("ect", "P_mean"),
    "ect_P_std": ("ect", "P_std"),
}


@dataclass(frozen=True)
class ObjectiveConfig:
    """[objective]: which loss (objectives.OBJECTIVES) and the distance the consistency losses
    share; each objective's own hyper-parameters in its section, e.g. [objective.ect]."""

    kind: Literal["edm", "cd", "ict", "ect"] = "edm"
    distance: Literal["l2", "pseudo_huber"] = "pseudo_huber"
    # Pseudo-Huber constant c = huber_c * sqrt(dim) (iCT: 0.00054 for images).
    huber_c: float = 0.00054
    edm: EDMObjectiveConfig = field(default_factory=EDMObjectiveConfig)
    cd: CDObjectiveConfig = field(default_factory=CDObjectiveConfig)
    ict: ICTObjectiveConfig = field(default_factory=ICTObjectiveConfig)
    ect: ECTObjectiveConfig = field(default_factory=ECTObjectiveConfig)

    def __post_init__(self) -> None:
        check_field(self.huber_c > 0, "objective.huber_c", "must be > 0")

    @staticmethod
    def upgrade(data: dict, prefix: str) -> dict:
        """Read the flat keys of older recipes, run configs and states (``ect_q``, ``s0``, ...)
        into their sections, with a note; from_dict calls this before checking keys."""
        old = [k for k in data if k in LEGACY_OBJECTIVE_KEYS]
        if not old:
            return data
        out = {k: v for k, v in data.items() if k not in LEGACY_OBJECTIVE_KEYS}
        for key in old:
            section, name = LEGACY_OBJECTIVE_KEYS[key]
            out.setdefault(section, {}).setdefault(name, data[key])
            if key == "rho":
                out.setdefault("ict", {}).setdefault("rho", data[key])
        moved = ", ".join(f"{k} -> {'.'.join(LEGACY_OBJECTIVE_KEYS[k])}" for k in old)
        logging.getLogger("cmaudio").info("%s: old flat keys read into sections (%s)", prefix or "objective", moved)
        return out


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["adamw", "radam"] = "adamw"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    eps: float = 1e-8
    warmup_steps: int = 200
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    ema_halflife_kimg: float = 50.0  # evaluation EMA half-life in thousands of examples (EDM)
    ema_warmup_ratio: float = 0.05  # EDM: half-life capped at this fraction of examples seen
    label_lr_scale: float = 1.0  # the label tables' lr over lr (fit --from: new labels move far)

    def __post_init__(self) -> None:
        check_field(self.lr > 0, "optim.lr", "must be positive")
        check_field(all(0 <= b < 1 for b in self.betas), "optim.betas", "must be in [0, 1)")
        check_field(self.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0")
        check_field(self.grad_clip >= 0, "optim.grad_clip", "must be >= 0")
        check_field(self.ema_halflife_kimg >= 0, "optim.ema_halflife_kimg", "must be >= 0")
        check_field(self.label_lr_scale > 0, "optim.label_lr_scale", "must be > 0")


@dataclass(frozen=True)
class RunConfig:
    """How long, how big, how often (training/acoustic.py)."""

    steps: int = 1000
    batch_size: int = 64  # global batch, split over processes
    grad_accum: int = 1
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every: int = 10
    sample_every: int = 500  # wav + spectrogram png into samples/; 0 disables
    save_every: int = 200  # model.safetensors + state.pt
    snapshot_every: int = 0  # model-<step>.safetensors; 0 disables
    sample_steps: int = 2  # sampler steps for periodic samples (student); teachers use Heun
    max_bad_steps: int = 20  # stop after this many non-finite losses in a row

    def __post_init__(self) -> None:
        check_field(self.steps >= 1, "run.steps", "must be >= 1")
        check_field(self.batch_size >= 1, "run.batch_size", "must be >= 1")
        check_field(self.grad_accum >= 1, "run.grad_accum", "must be >= 1")
        check_field(self.log_every >= 1, "run.log_every", "must be >= 1")
        check_field(self.save_every >= 1, "run.save_every", "must be >= 1")
        check_field(self.sample_every >= 0, "run.sample_every", "must be >= 0")
        check_field(self.snapshot_every >= 0, "run.snapshot_every", "must be >= 0")
        check_field(self.max_bad_steps >= 1, "run.max_bad_steps", "must be >= 1")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; saved resolved as RUN/config.json."""

    name: str = "run"
    teacher: str = ""  # model file a student (cd, ect) starts from and distils
    init: str = ""  # model file to start from instead (any kind); the data's new labels extend its tables
    mel: MelConfig = field(default_factory=MelConfig)
    net: NetConfig = field(default_factory=NetConfig)
    precond: PrecondConfig = field(default_factory=PrecondConfig)
    data: DataConfig = field(default_factory=DataConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        # The teacher path may be filled in later with --set teacher=PATH; checked at run time.
        if self.objective.kind == "edm":
            check_field(self.precond.kind == "edm", "precond.kind", "the EDM teacher uses precond.kind = 'edm'")
        else:
            check_field(
                self.precond.kind == "consistency",
                "precond.kind",
                f"objective {self.objective.kind!r} needs precond.kind = 'consistency'",
            )


@dataclass(frozen=True)
class ModelConfig:
    """What a model file needs to rebuild and use its network, with nothing else (checkpoint.py)."""

    mel: MelConfig = field(default_factory=MelConfig)
    stats: MelStats = field(default_factory=MelStats)
    net: NetConfig = field(default_factory=NetConfig)
    precond: PrecondConfig = field(default_factory=PrecondConfig)
    frames: int = 63  # training clip length in frames
    # Conditioning: one categorical factor per field (e.g. ("label",) or ("pitch", "family")),
    # with its value names in index order; index len(names) is the null class.
    cond_fields: tuple[str, ...] = ()
    classes: tuple[tuple[str, ...], ...] = ()
    # Recommended intermediate sigmas per step count, e.g. {"2": [80.0, 0.8]} (sampling.py).
    sigmas: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_field(self.frames >= 1, "model.frames", "must be >= 1")
        check_field(
            len(self.cond_fields) == len(self.classes),
            "model.classes",
            "needs one list of class names per conditioning field",
        )
        for k, names in zip(self.cond_fields, self.classes):
            check_field(len(names) >= 1, f"model.classes[{k}]", "needs at least one class")
            check_field(len(set(names)) == len(names), f"model.classes[{k}]", "class names must be unique")

    @property
    def cond_sizes(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.classes)


def check_field(ok: bool, key: str, message: str) -> None:
    """Raise ConfigError("key: message") unless ``ok`` (the configs' __post_init__ checks)."""
    if not ok:
        raise ConfigError(f"{key}: {message}")


# ----------------------------------------------------------------------------------------------
# Strict conversion


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain JSON-able dict (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


T = typing.TypeVar("T")


def from_dict(cls: type[T], data: Any, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a dict, refusing unknown keys and values of the wrong type."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or cls.__name__}: expected a table, got {type(data).__name__}")
    if hasattr(cls, "upgrade"):  # a table whose keys moved keeps reading its older files
        data = cls.upgrade(data, prefix)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        key = _join(prefix, unknown[0])
        raise ConfigError(f"{key}: unknown key (valid keys: {', '.join(sorted(names))})")
    kwargs = {k: _convert(hints[k], v, _join(prefix, k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix or cls.__name__}: {exc}") from None


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(repr(a) for a in args)}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return {str(k): _convert(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise ConfigError(f"{key}: unsupported config type {tp}")


# ----------------------------------------------------------------------------------------------
# TOML and overrides


def parse_value(text: str) -> Any:
    """Parse an override value as TOML (numbers, booleans, lists, quoted strings); a bare word
    that is not valid TOML is taken as a string, so ``--set data.root=/tmp/x`` works unquoted."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``a.b=value`` strings to a nested dict (a copy). Unknown keys are caught later by
    from_dict, which names them."""
    data = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. run.steps=100")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--set {item!r}: empty key")
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {p!r} is a value, not a table")
            node = child
        node[parts[-1]] = parse_value(text)
    return data


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = (), cls: type[T] = TrainConfig) -> T:
    """Read a TOML recipe (or start from defaults when ``path`` is None), apply overrides, and
    build ``cls`` strictly. Relative ``data.root`` and ``teacher`` paths stay as written: they are
    resolved against the working directory, like every other path a CLI takes."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    return from_dict(cls, apply_overrides(data, overrides))
