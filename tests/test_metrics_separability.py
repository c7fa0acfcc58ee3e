"""Linear separability in the metrics group: the ``metrics.separability`` section's one-line
errors, ``fid.py metrics=separability`` printing :func:`format_separability`'s lines of
:func:`linear_separability`, a classifier of another resolution refused before FID, and the FID
callback logging ``metrics/separability_z|w`` (or skipping them, with one warning, at another
resolution). Tiny networks: the 16px generator of test_attributes, randomly initialised
ResNet-18 classifiers written with ``classifier_export``."""

import csv

import pytest
import torch
from conftest import ROOT, compose_config, main_in_process
from test_attributes import PROBES, tiny_generator

from stylegan import sampling
from stylegan.attributes import (
    AttributeClassifier,
    classifier_export,
    format_separability,
    linear_separability,
    load_classifier,
)
from stylegan.checkpoints import atomic_torch_save, generator_export, load_generator
from stylegan.errors import ConfigError, UserError
from stylegan.metrics.suite import MetricChoice
from train import train

CHOSEN = {"classifier": "classifier.pt", "num_samples": 8}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """generator.pt of the tiny 16px generator, and classifier<R>.pt at 8, 16 and 32 px (the
    16px one centred on that generator's faces: both classes, so scores other than 1)."""
    root = tmp_path_factory.mktemp("separability")
    out = {"gen": root / "generator.pt"}
    G = tiny_generator()
    atomic_torch_save(generator_export(G, resolution=16, images_seen=0), out["gen"])
    for resolution in (8, 16, 32):
        torch.manual_seed(resolution)
        clf = AttributeClassifier(attributes=PROBES, resolution=resolution).eval()
        if resolution == 16:
            with torch.no_grad():
                logits = clf(sampling.generate_images(G, range(256), batch_size=64))
                clf.net.fc.bias -= logits.median(dim=0).values
        out[resolution] = root / f"classifier{resolution}.pt"
        atomic_torch_save(classifier_export(clf, crop=[0.72, 0.555]), out[resolution])
    return out


# ---------------------------------------------------------------------------------------------
# The config section
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"num_samples": 8}, r"metrics\.separability\.classifier is required: set "
                             r"metrics\.separability\.classifier=PATH"),
        ({"classifier": None, "num_samples": 8}, r"classifier is required"),
        ({"classifier": "c.pt"}, r"metrics\.separability\.num_samples is required"),
        ({**CHOSEN, "seed": [0]}, r"metrics\.separability: unknown option\(s\) \['seed'\]"),
        ({**CHOSEN, "seeds": 3}, r"metrics\.separability\.seeds must be a list of integers"),
        ({**CHOSEN, "seeds": []}, r"metrics\.separability\.seeds needs at least 1 seed"),
        ({**CHOSEN, "seeds": [0, -1]}, r"metrics\.separability\.seeds must be a non-negative"),
        ({**CHOSEN, "num_samples": 3}, r"metrics\.separability\.num_samples must be >= 4"),
        ({**CHOSEN, "num_samples": "many"}, r"num_samples must be an integer, got 'many'"),
        ({**CHOSEN, "keep_fraction": 0}, r"metrics\.separability\.keep_fraction must be in"),
        ({**CHOSEN, "batch_size": 0}, r"metrics\.separability\.batch_size must be an integer"),
    ],
)  # fmt: skip
def test_a_bad_separability_section_is_one_config_error_line(section, message):
    with pytest.raises(ConfigError, match=message) as err:
        MetricChoice.from_config({"separability": section})
    assert "\n" not in str(err.value)


def test_the_separability_preset_and_the_others():
    cfg = compose_config("fid", ["metrics=separability", "metrics.separability.classifier=c.pt"])
    choice = MetricChoice.from_config(cfg.metrics)
    assert choice.separability == {
        "classifier": "c.pt", "num_samples": 10000, "seeds": [0, 1, 2], "keep_fraction": 0.5,
        "batch_size": 32,
    }  # fmt: skip
    assert choice.kid is None and choice.ppl is None  # FID + separability only
    assert choice.without_ppl().separability == choice.separability
    with pytest.raises(ConfigError, match="classifier is required"):
        MetricChoice.from_config(compose_config("train", ["metrics=separability"]).metrics)
    assert (
        MetricChoice.from_config(compose_config("fid", ["metrics=all"]).metrics).separability
        is None
    )
    with pytest.raises(ConfigError, match=r"expected kid, precision_recall, ppl, separability"):
        MetricChoice.from_config({"seperability": {}})


# ---------------------------------------------------------------------------------------------
# fid.py
# ---------------------------------------------------------------------------------------------


def test_fid_py_prints_the_lines_of_linear_separability(
    files, celeba_root, shared_cache_dir, tmp_path, capsys
):
    import fid

    cfg = compose_config("fid", [
        f"ckpt={files['gen']}", f"data.root={celeba_root}", "data.limit=64",
        f"paths.root_dir={ROOT}", f"paths.cache_dir={shared_cache_dir}",
        f"paths.fid_cache_dir={tmp_path / 'fid'}", "feature_network=tiny", "num_images=32",
        "metrics=separability", f"metrics.separability.classifier={files[16]}",
        "metrics.separability.num_samples=64", "metrics.separability.seeds=[0,1]",
        "metrics.separability.keep_fraction=0.75", "metrics.separability.batch_size=16",
    ])  # fmt: skip
    fid.hydra_main(cfg)
    printed = capsys.readouterr().out.strip().splitlines()
    G, _ = load_generator(files["gen"])
    classifier, _ = load_classifier(files[16], resolution=16)
    expected = linear_separability(G, classifier, num_samples=64, seeds=[0, 1],
                                   keep_fraction=0.75, resolution=16, batch_size=16,
                                   progress=False)  # fmt: skip
    assert printed[0].startswith("FID ") and "at 16px, tiny" in printed[0]
    assert printed[1:] == format_separability(expected)
    # Numbers that tell the spaces and the seeds apart, so a swap would show.
    assert expected["z"] != expected["w"] and expected["z"][0] != expected["z"][1]


def test_fid_py_refuses_a_classifier_of_another_resolution_before_anything_else(
    files, tmp_path, monkeypatch, capsys
):
    import fid

    def tripwire(*args, **kwargs):
        raise AssertionError("fid.py built the data module before checking the classifier")

    monkeypatch.setattr(fid, "instantiate", tripwire)
    common = [f"ckpt={files['gen']}", "metrics=separability", f"hydra.run.dir={tmp_path}"]
    status, lines = main_in_process(
        monkeypatch, capsys, fid, *common, f"metrics.separability.classifier={files[32]}"
    )
    assert status == 2 and len(lines) == 1, lines
    assert (
        lines[0].startswith("error: ")
        and "classifies 32px images but the generator makes 16px" in lines[0]
    )
    status, lines = main_in_process(monkeypatch, capsys, fid, *common)
    assert status == 2 and len(lines) == 1, lines
    assert "metrics.separability.classifier=PATH" in lines[0]


# ---------------------------------------------------------------------------------------------
# The FID callback
# ---------------------------------------------------------------------------------------------

FAST = [
    "logger=csv",
    "metrics=separability",
    "metrics.separability.num_samples=128",  # 64 kept faces in the 32 dims of z and w
    "metrics.separability.seeds=[0]",
    "callbacks.fid.feature_network=tiny",
    "callbacks.fid.num_images=32",
    "callbacks.fid.batch_size=16",
    "stage.total_kimg=0.064",  # at 8px, alpha 1
]


def _logged(tmp_path) -> list[dict]:
    rows = list(csv.DictReader((tmp_path / "csv" / "version_0" / "metrics.csv").open()))
    return [{k: float(v) for k, v in row.items() if k.startswith("metrics/") and v} for row in rows]


def test_callback_logs_the_separability_of_the_generator_it_evaluated(
    files, train_config, tmp_path, monkeypatch
):
    import train as train_module

    captured = {}
    build_module = train_module.build_module

    def capture(cfg, schedule):
        captured["m"] = build_module(cfg, schedule)
        return captured["m"]

    monkeypatch.setattr(train_module, "build_module", capture)
    cfg = train_config(
        *FAST, f"metrics.separability.classifier={files[8]}", "callbacks.fid.at_train_end=true",
        f"paths.fid_cache_dir={tmp_path / 'fid'}",
    )  # fmt: skip
    train(cfg)
    (logged,) = [row for row in _logged(tmp_path) if "metrics/fid" in row]
    module = captured["m"]
    assert module.resolution == 8 and module.alpha == 1
    classifier, _ = load_classifier(files[8], resolution=8)
    expected = linear_separability(module.generator_ema, classifier, num_samples=128, seeds=[0],
                                   resolution=8, batch_size=32, progress=False)  # fmt: skip
    assert expected["z"][0] != expected["w"][0]  # a swap would show
    assert logged["metrics/separability_z"] == pytest.approx(expected["z"][0], rel=1e-5)
    assert logged["metrics/separability_w"] == pytest.approx(expected["w"][0], rel=1e-5)


def test_callback_skips_separability_at_another_resolution_with_one_warning(
    files, train_config, tmp_path
):
    cfg = train_config(
        *FAST, f"metrics.separability.classifier={files[16]}", "callbacks.fid.every_kimg=0.032",
        f"paths.fid_cache_dir={tmp_path / 'fid'}", "trainer.log_every_n_steps=1",
    )  # fmt: skip
    with pytest.warns(UserWarning, match="linear separability skipped at 8px") as caught:
        train(cfg)
    assert sum("linear separability skipped" in str(w.message) for w in caught) == 1
    rows = [row for row in _logged(tmp_path) if "metrics/fid" in row]
    assert (
        len({row["metrics/fid"] for row in rows}) == 2
    )  # two evaluations, separability in neither
    assert not any(key.startswith("metrics/separability") for row in rows for key in row)


def test_callback_skips_while_fading_in_and_refuses_a_missing_classifier(files, train_config):
    from stylegan.callbacks.fid import FIDCallback

    metrics = {"separability": {**CHOSEN, "classifier": str(files[16])}}
    callback = FIDCallback(feature_network="tiny", metrics=metrics)
    G = tiny_generator()
    with pytest.warns(UserWarning, match=r"skipped at 16px \(alpha 0\.50\)"):
        assert callback._separability(G, 16, 0.5, True) == {}
    assert set(callback._separability(G, 16, 1.0, True)) == {
        "separability_z", "separability_w", "separability"
    }  # fmt: skip
    cfg = train_config("metrics=separability", "metrics.separability.classifier=nowhere.pt",
                       "callbacks.fid.at_train_end=true")  # fmt: skip
    with pytest.raises(UserError, match=r"attribute classifier not found: nowhere\.pt") as err:
        train(cfg)
    assert "\n" not in str(err.value)
