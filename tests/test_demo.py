"""demo/ (app.py, layout.py, handlers.py): the Gradio app served on a free local port, called
through its API with gradio_client and driven in headless Chromium with Selenium (Debian's
chromium and chromedriver; no browser download). Models are tiny and untrained: these tests check
the plumbing, not sound."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # tests make no calls beyond localhost
pytest.importorskip("gradio")
pytest.importorskip("gradio_client")
pytest.importorskip("matplotlib")

from conftest import load_script  # tests/ is on sys.path (rootdir import mode)
from test_pipeline import make_model

from cmaudio.audio import MelConfig, MelStats
from cmaudio.checkpoint import save_model
from cmaudio.config import ModelConfig, NetConfig, PrecondConfig
from cmaudio.precond import Denoiser

HOP = 256
CLIP_SAMPLES = 15 * HOP  # make_model: 16 frames -> (16 - 1) * hop samples
# demo/screenshot.py holds the browser set-up the README's screenshot and these tests share.
browser_tools = load_script("demo/screenshot.py", "cmaudio_demo_screenshot")
CHROMIUM, CHROMEDRIVER = browser_tools.CHROMIUM, browser_tools.CHROMEDRIVER
free_port, wait_for = browser_tools.free_port, browser_tools.wait_for


def make_factored_model(path: Path) -> Path:
    """A tiny two-factor (pitch, family) consistency model, labels like "60:organ"."""
    torch.manual_seed(1)
    cfg = ModelConfig(
        mel=MelConfig(),
        stats=MelStats(-6.0, 2.5),
        precond=PrecondConfig(kind="consistency"),
        frames=16,
        net=NetConfig(channels=16, channel_mult=(1, 2), num_blocks=1, attention=False),
        cond_fields=("pitch", "family"),
        classes=(("60", "62"), ("guitar", "organ")),
        sigmas={"2": [80.0, 0.7]},
    )
    return save_model(path, Denoiser(cfg), cfg, step=1)


@pytest.fixture(scope="module")
def app(script_module):
    return script_module("demo/app.py", "cmaudio_demo_app")


@pytest.fixture(scope="module")
def handlers(app):
    """demo/handlers.py (its limits and label choices), the module app.py imported."""
    import importlib

    return importlib.import_module("handlers")  # app.py puts demo/ on sys.path, as `python demo/app.py` does


@pytest.fixture(scope="module")
def server(app, tmp_path_factory):
    """The demo on a free port with a one-factor and a two-factor tiny model; its URL."""
    models = tmp_path_factory.mktemp("demo-models")
    demo = app.build_demo(
        {
            "tiny": make_model(models / "tiny.safetensors", label_dropout=0.1),  # a null label: guidance works
            "pair": make_factored_model(models / "pair.safetensors"),  # none: guidance refused
        },
        device="cpu",
    )
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        max_file_size=app.MAX_UPLOAD_BYTES,
    )
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    from gradio_client import Client

    downloads = str(tmp_path_factory.mktemp("downloads"))
    return Client(server, verbose=False, download_files=downloads, analytics_enabled=False)


def gen(client, **kw):
    args = dict(model="tiny", label="high", label2=None, steps=2, seed=0, clips=1, duration=0, vocoder="griffinlim")
    args.update(kw)
    args.setdefault("sigmas", "")
    return client.predict(**args, api_name="/generate")


def read(path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="int16")
    return data, sr


# ----------------------------------------------------------------------------------------------
# API (gradio_client)


def test_generate_api_rate_length_and_seed(handlers, client):
    out = gen(client, seed=5, clips=2)
    assert len(out) == 2 * handlers.MAX_CLIPS + 2
    audio, images, report, seed = out[: handlers.MAX_CLIPS], out[handlers.MAX_CLIPS : -2], out[-2], out[-1]
    assert audio[2:] == (None,) * (handlers.MAX_CLIPS - 2) and images[2:] == (None,) * (handlers.MAX_CLIPS - 2)
    assert seed == 5 and "2 clips" in report and "real time" in report and "seeds 5-6" in report
    clips = [read(a) for a in audio[:2]]
    for data, sr in clips:
        assert sr == 16000 and data.shape == (CLIP_SAMPLES,) and np.abs(data).max() > 0
    assert all(Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in images[:2])
    again = gen(client, seed=5, clips=2)
    assert all(np.array_equal(read(a)[0], c[0]) for a, c in zip(again[:2], clips))
    # Clip k of a call has seed + k: clip 2 above is clip 1 of a call at seed 6 (up to Griffin-Lim's
    # amplification of batch-size float rounding, see test_pipeline.test_sample_depends_only_on_its_seed).
    alone = read(gen(client, seed=6)[0])[0].astype(np.int32)
    assert np.abs(alone - clips[1][0]).max() <= 0.005 * 32767


def test_random_seed_is_shown_and_reproduces(client):
    out = gen(client, seed=-1)
    seed = int(out[-1])
    assert 0 <= seed and f"seed {seed}" in out[-2]
    assert np.array_equal(read(gen(client, seed=seed)[0])[0], read(out[0])[0])


def test_long_audio_and_labels(handlers, client):
    data, sr = read(gen(client, duration=1.0)[0])
    assert sr == 16000 and data.shape == (62 * HOP,)  # 1 s -> 63 frames -> 62 hops
    out = gen(client, label=handlers.EACH_CLASS, clips=3, sigmas="80, 0.7")
    assert "sigmas 80, 0.7" in out[-2] and all(out[k] for k in range(3))
    assert gen(client, model="pair", label="62", label2="organ")[0]
    assert gen(client, model="pair", label="60", label2=handlers.ANY)[0]


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(steps=9), "maximum"),  # Gradio's slider bound, before the handler runs
        (dict(clips=0), "minimum"),
        (dict(duration=0.05), "duration must be 0"),
        (dict(sigmas="80, abc"), "sigmas: expected numbers"),
        (dict(sigmas="0.7, 80"), "decreasing"),
        (dict(sigmas=",".join(["80"] + ["1"] * 8)), "at most 8"),
        (dict(label="seven"), "unknown label 'seven'"),
        (dict(model="pair", label="60", label2="violin"), "unknown family 'violin'"),
        (dict(model="pair", label=None), "choose a pitch"),
        (dict(seed=2**40), "seed must be between"),
        (dict(guidance=6), "maximum"),
        (dict(model="pair", label="60", label2="organ", guidance=2), "null label"),
    ],
)
def test_generate_api_rejects_bad_input(client, kw, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        gen(client, **kw)
    assert message in str(err.value)


def edit(client, path, **kw):
    from gradio_client import handle_file

    args = dict(model="tiny", mode="variation", start=0.1, end=0.3, seconds=0.5, strength=0.5, label="(none)")
    args.update(label2="(any)", steps=2, seed=0, vocoder="griffinlim", sigmas="")
    args.update(kw)
    return client.predict(audio=handle_file(str(path)), **args, api_name="/edit")


def test_edit_api_modes_resample_to_model_rate(client, tone, write_wav, tmp_path):
    clip = write_wav(tmp_path / "in.wav", tone(440, 0.7, sr=22050), sr=22050)
    n = round(0.7 * 16000)
    for mode in ("variation", "inpaint", "continue"):
        wav, image, report, seed = edit(client, clip, mode=mode, label="high")
        data, sr = read(wav)
        assert sr == 16000 and Path(image).is_file() and seed == 0 and "real time" in report
        # The vocoder renders whole hops: up to one hop short of the input's length.
        want = n + (0.5 * 16000 if mode == "continue" else 0)
        assert want - 2 * HOP <= data.shape[0] <= want + HOP, mode
    a = edit(client, clip, seed=3)[0]
    assert np.array_equal(read(a)[0], read(edit(client, clip, seed=3)[0])[0])


def test_bad_uploads_show_an_error_and_the_app_keeps_serving(client, write_wav, tmp_path):
    from gradio_client.exceptions import AppError

    garbage = tmp_path / "corrupt.wav"
    garbage.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(200))
    text = tmp_path / "notes.txt"
    text.write_text("not audio\n")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    long = write_wav(tmp_path / "long.wav", np.zeros(31 * 8000, np.float32), sr=8000)
    for path, message in [
        (garbage, "corrupt.wav: not a readable audio file"),
        (text, "notes.txt: not a readable audio file"),
        (empty, "empty.wav: the file is empty"),
        (long, "over the 30 s limit"),
    ]:
        with pytest.raises(AppError) as err:
            edit(client, path)
        assert message in str(err.value) and "/tmp" not in str(err.value)
    with pytest.raises(AppError, match="greater than maximum"):
        edit(client, long, strength=1.5)  # Gradio's own slider check
    data, sr = read(gen(client, seed=1)[0])
    assert sr == 16000 and data.shape == (CLIP_SAMPLES,)


def test_main_port_taken_is_one_line_exit_2(app, capsys, tmp_path):
    model = make_model(tmp_path / "m.safetensors")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert app.main(["--model", str(model), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"demo/app.py: error: cannot serve on 127.0.0.1:{port}")


def test_main_without_models_is_one_line_exit_2(app, capsys, monkeypatch):
    monkeypatch.setattr(app, "default_models", dict)
    assert app.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("demo/app.py: error: no models to serve") and len(err.splitlines()) == 1
    assert app.main(["--model", "missing/model.safetensors"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert app.main(["--model", "no-such-bundled-model"]) == 2
    assert "unknown model 'no-such-bundled-model'" in capsys.readouterr().err
    assert app.main(["--port", "70000"]) == 2
    assert app.main(["--help"]) == 0 and "python demo/app.py --model" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# Browser (headless Chromium + Selenium)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    pytest.importorskip("selenium.webdriver")
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    driver = browser_tools.headless_chromium("1280,1300", profile)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def choose(driver, dropdown_id: str, value: str) -> None:
    """Pick ``value`` in a gr.Dropdown: open its combobox, click the option."""
    wait_for(driver, f"#{dropdown_id} input").click()
    wait_for(driver, f'[role="option"][aria-label="{value}"]').click()


def test_browser_generate_then_edit(server, browser, tmp_path):
    browser.get(server)
    choose(browser, "label", "high")
    assert wait_for(browser, "#label input").get_attribute("value") == "high"
    wait_for(browser, "#generate-button").click()
    t0 = time.perf_counter()
    audio = wait_for(browser, "#clip-0 audio[src]")
    image = wait_for(browser, "#spec-0 img[src]")
    assert "/gradio_api/file=" in audio.get_attribute("src") and "/gradio_api/file=" in image.get_attribute("src")
    assert "real time" in wait_for(browser, "#generate-info").text
    assert time.perf_counter() - t0 < 20
    browser.save_screenshot(str(tmp_path / "generate.png"))
    assert (tmp_path / "generate.png").stat().st_size > 10_000

    # "Edit clip 1" carries the clip to the Edit tab, where a variation of it comes back.
    wait_for(browser, "#send-0").click()
    wait_for(browser, "#edit-input [data-testid='download-link']")
    wait_for(browser, "#edit-button").click()
    assert "/gradio_api/file=" in wait_for(browser, "#edit-output audio[src]").get_attribute("src")
    wait_for(browser, "#edit-spec img[src]")
    browser.save_screenshot(str(tmp_path / "edit.png"))


def test_browser_corrupt_upload_shows_error_then_generate_works(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server)
    garbage = tmp_path / "corrupt.wav"
    garbage.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(400))
    wait_for(browser, "button[role='tab']:not([aria-selected='true'])").click()  # the Edit tab
    upload = wait_for(browser, "#edit-input input[type='file']")
    upload.send_keys(str(garbage))
    wait_for(browser, "#edit-input [data-testid='download-link']")
    wait_for(browser, "#edit-button").click()
    # The toast's text may arrive after its element: wait for the text, not just the element.
    from selenium.webdriver.support.ui import WebDriverWait

    texts = WebDriverWait(browser, 20).until(
        lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, "[data-testid='toast-body']") if e.text]
    )
    assert any("not a readable audio file" in t for t in texts), texts
    browser.save_screenshot(str(tmp_path / "error.png"))

    browser.find_element(By.CSS_SELECTOR, "button[role='tab']").click()  # back to Generate
    wait_for(browser, "#generate-button").click()
    assert wait_for(browser, "#clip-0 audio[src]")


def test_generate_api_loop_and_quality_badge(handlers, client):
    """The loop checkbox (last /generate input, optional) and the flags badge in the report."""
    out = gen(client, seed=3, loop=True)
    data, _ = read(out[0])
    assert data.shape == (CLIP_SAMPLES,) and ("flagged" in out[-2] or "no quality flags" in out[-2])
    plain = gen(client, seed=3)
    assert not np.array_equal(read(plain[0])[0], data)  # the loop rewrote the clip's ends
    with pytest.raises(Exception, match="loop must be true or false"):
        gen(client, seed=3, loop="yes")


def test_generate_api_guidance(client):
    """The guidance slider (optional last input): other audio, said in the report."""
    plain, guided = gen(client, seed=3), gen(client, seed=3, guidance=2.5)
    assert not np.array_equal(read(plain[0])[0], read(guided[0])[0])
    assert "guidance 2.5" in guided[-2] and "guidance" not in plain[-2]


def test_screenshot_picks_the_each_in_turn_entry(handlers):
    """demo/screenshot.py names the label entry the README's screenshot shows by its text; the
    dropdown's entry is handlers.EACH_CLASS."""
    assert browser_tools.EACH == handlers.EACH_CLASS
