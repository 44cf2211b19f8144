"""The inference path stays light: importing cmaudio (and its Pipeline) pulls in no UI or plotting
packages."""

from __future__ import annotations

import subprocess
import sys


def test_import_cmaudio_imports_neither_gradio_nor_matplotlib():
    code = (
        "import sys, cmaudio; from cmaudio import Pipeline; import cmaudio.generate, cmaudio.train; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('gradio', 'matplotlib')); "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", out.stdout


def test_lazy_public_names():
    import cmaudio

    assert cmaudio.Pipeline.__name__ == "Pipeline" and callable(cmaudio.load_model)
    try:
        cmaudio.nonexistent  # noqa: B018
    except AttributeError as exc:
        assert "nonexistent" in str(exc)
    else:
        raise AssertionError("unknown attribute did not raise")
