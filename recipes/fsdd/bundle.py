"""Make the bundled digits-real file from a fit of FSDD (recipes/fsdd/README.md).

    python recipes/fsdd/bundle.py runs/digits-real/model.safetensors cmaudio/assets/digits-real.safetensors

A fit ``--from digits`` keeps the source model's labels ("zero".."nine", synthetic speech) next
to the data's ("0".."9"). The bundled file answers to the data set's own labels only: the label
table keeps the rows of ``--keep`` (default 0..9) and the null row, in that order; every other
weight is copied unchanged, so a kept label generates exactly what it did. The metadata names
the model, the data and its licence (CC BY-SA 4.0, with attribution).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cmaudio.checkpoint import load_model, save_model
from cmaudio.precond import Denoiser

LICENCE = (
    "CC BY-SA 4.0: trained on the Free Spoken Digit Dataset (Jakobovski/free-spoken-digit-dataset, "
    "CC BY-SA 4.0), speakers george, jackson and lucas; share alike, with this attribution"
)
TABLE = re.compile(r"(^|\.)classes\.0\.weight$")


def keep_labels(model_file, keep: list[str]) -> tuple[torch.nn.Module, object]:
    """(model, config) of ``model_file`` with a first-factor label table of ``keep``, in order."""
    cfg = model_file.config
    names = list(cfg.classes[0])
    missing = [k for k in keep if k not in names]
    if missing:
        raise SystemExit(f"bundle: the model has no label {missing[0]!r} (it has {', '.join(names)})")
    rows = [names.index(k) for k in keep] + [len(names)]  # the kept rows, then the null row
    new_cfg = dataclasses.replace(cfg, classes=(tuple(keep), *cfg.classes[1:]))
    state = {
        key: value[rows] if TABLE.search(key) else value for key, value in model_file.model.state_dict().items()
    }
    model = Denoiser(new_cfg)
    model.load_state_dict(state)  # strict: every other tensor as it was
    return model, new_cfg


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="the fit's RUN/model.safetensors")
    p.add_argument("out", help="the bundled file to write")
    p.add_argument("--keep", default=",".join(str(d) for d in range(10)), help="labels to keep, in order")
    p.add_argument("--name", default="digits-real")
    a = p.parse_args(argv)
    mf = load_model(a.model)
    model, cfg = keep_labels(mf, a.keep.split(","))
    extra = {k: v for k, v in mf.metadata.items() if k in ("objective", "sigma_search", "fit_plan")}
    extra |= {"name": a.name, "licence": LICENCE, "data": "Free Spoken Digit Dataset (FSDD), 8 kHz, 3 speakers"}
    save_model(a.out, model, cfg, mf.step, extra=extra, dtype=torch.float16)
    size = Path(a.out).stat().st_size / 2**20
    print(f"bundle: wrote {a.out} ({size:.1f} MB, labels {', '.join(cfg.classes[0])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
