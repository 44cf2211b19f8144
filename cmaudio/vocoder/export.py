"""Re-save a NeuralVocoder file with a different mel-consistency refinement (e.g. for
cmaudio/assets): ``python -m cmaudio.vocoder.train --export SRC DST --mel-refine N``. The
refinement has no weights, so the same tensors load strictly into the new config.

    python -m cmaudio.vocoder.train --export cmaudio/assets/vocoder-16k.safetensors \
        cmaudio/assets/vocoder-16k-hq.safetensors --name vocoder-16k-hq \
        --mel-refine 16 --mel-refine-updates 1 --mel-refine-momentum 0.8
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from ..checkpoint import load_weights
from ..errors import CheckpointError, ConfigError, UsageError
from .fileformat import save_vocoder
from .neural import NeuralVocoder, VocoderConfig, read_vocoder_metadata

__all__ = ["export_vocoder", "refined_vocoder"]


def _refined(config: VocoderConfig, **given: int | float | None) -> VocoderConfig:
    """``config`` with the refinement settings given (those not None) replaced."""
    changes = {k: v for k, v in given.items() if v is not None}
    # VocoderNetConfig checks every value (a ConfigError, one line: "net.mel_refine: must be ...")
    return dataclasses.replace(config, net=dataclasses.replace(config.net, **changes))


def export_vocoder(
    src: str | Path,
    dst: str | Path,
    *,
    mel_refine: int | None = None,
    mel_refine_updates: int | None = None,
    mel_refine_momentum: float | None = None,
    name: str | None = None,
) -> Path:
    """Re-save the vocoder file ``src`` as ``dst`` (weights, step and trained_on unchanged; the name
    too unless ``name`` is given), with ``net.mel_refine`` / ``mel_refine_updates`` /
    ``mel_refine_momentum`` replaced when given.
    Prints one line; every refusal is a one-line UsageError."""
    try:
        out, meta = refined_vocoder(
            src,
            mel_refine=mel_refine,
            mel_refine_updates=mel_refine_updates,
            mel_refine_momentum=mel_refine_momentum,
            name=name,
        )
    except (CheckpointError, ConfigError) as exc:
        raise UsageError(str(exc)) from None
    config, name = out.config, out.name
    path = Path(dst)
    step = int(meta["step"]) if meta.get("step", "").isdigit() else 0
    save_vocoder(path, out, name, step, extra={k: meta[k] for k in ("trained_on",) if k in meta})
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, step {step}, mel_refine {config.net.mel_refine}, "
        f"{config.net.mel_refine_updates} update(s) per pass, momentum {config.net.mel_refine_momentum})",
        file=sys.stderr,
    )
    return path


def refined_vocoder(
    src: str | Path,
    *,
    mel_refine: int | None = None,
    mel_refine_updates: int | None = None,
    mel_refine_momentum: float | None = None,
    name: str | None = None,
) -> tuple[NeuralVocoder, dict[str, str]]:
    """The vocoder file ``src`` rebuilt in memory with the refinement settings given (those not
    None) replaced, and the file's metadata. The vocoder is rebuilt, not relabelled: the
    constructor makes the refinement's filterbank buffers, which a file saved without refinement
    lacks. CheckpointError or ConfigError on a bad file or setting."""
    meta, config = read_vocoder_metadata(src)
    config = _refined(
        config, mel_refine=mel_refine, mel_refine_updates=mel_refine_updates, mel_refine_momentum=mel_refine_momentum
    )
    out = NeuralVocoder(config, name=name or meta.get("name") or Path(src).stem)
    load_weights(src, out)  # the refinement has no weights: the same tensors load strictly
    return out, meta
