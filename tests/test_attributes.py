"""stylegan.attributes and attributes.py: the classifier's format and training loop, the paper's
linear separability, InterFaceGAN directions and editing, conditional sampling, one-line errors.

Everything runs on tiny networks. The "classifier" of the editing tests is a planted probe: fixed
linear read-outs of the image (mean red, mean green, and their sum "Warm"), so what an attribute
means is known exactly and the fitted directions can be checked against it.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

from stylegan import sampling
from stylegan.attributes import (
    AttributeClassifier,
    Directions,
    attribute_entropies,
    classifier_export,
    conditional_entropy,
    conditional_faces,
    edit_direction,
    edit_images,
    entropy,
    fit_directions,
    holdout_report,
    linear_separability,
    load_classifier,
    load_directions,
    most_confident,
    orthogonalize,
    parse_request,
    sample_attributes,
    separability_score,
    store_directions,
    train_classifier,
)
from stylegan.attributes.figures import measure_edit
from stylegan.attributes.training import TrainOptions, lr_at
from stylegan.checkpoints import atomic_torch_save, generator_export, load_generator
from stylegan.errors import ConfigError, UserError
from stylegan.networks import Generator

ROOT = Path(__file__).resolve().parents[1]
TINY_G = dict(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16)
PROBES = ["Red", "Green", "Warm"]
STRENGTHS = [-3, -2, -1, 0, 1, 2, 3]
LN2 = math.log(2)


def tiny_generator() -> Generator:
    torch.manual_seed(0)
    return Generator(**TINY_G).eval().requires_grad_(False)


def probe_features(images: torch.Tensor) -> torch.Tensor:
    red, green = images[:, 0].mean((1, 2)), images[:, 1].mean((1, 2))
    return torch.stack([red, green, red + green], 1)  # [N, 3]


class Probe(nn.Module):
    """Planted attributes: logit = k * (feature - median feature) for each of :data:`PROBES`."""

    def __init__(self, G: Generator) -> None:
        super().__init__()
        self.attributes, self.resolution = list(PROBES), G.resolution
        f = probe_features(sampling.generate_images(G, range(256), batch_size=64))
        self.register_buffer("center", f.median(dim=0).values)
        self.register_buffer("gain", 4 / f.std(dim=0))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.gain * (probe_features(images) - self.center)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The tiny generator, its probe, directions fitted on 512 faces, and a generator.pt with
    them (plus one without)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("attributes")
    G = tiny_generator()
    probe = Probe(G)
    _, w, probs = sample_attributes(G, probe, range(1000, 1512), batch_size=64, progress=False)
    directions = fit_directions(w, probs, PROBES, resolution=16, classifier="")
    plain = root / "plain.pt"
    with_dirs = root / "generator.pt"
    atomic_torch_save(generator_export(G, resolution=16, images_seen=0), plain)
    atomic_torch_save(generator_export(G, resolution=16, images_seen=0), with_dirs)
    store_directions(with_dirs, directions)
    return {"G": G, "probe": probe, "directions": directions, "plain": plain, "gen": with_dirs,
            "root": root}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The classifier: format, loading, training loop, report
# ---------------------------------------------------------------------------------------------


def test_classifier_roundtrip_and_resolution_check(tmp_path):
    torch.manual_seed(0)
    clf = AttributeClassifier(attributes=PROBES, resolution=16).eval()
    path = tmp_path / "classifier.pt"
    atomic_torch_save(classifier_export(clf, crop=[0.72, 0.555], holdout=None), path)
    loaded, info = load_classifier(path, resolution=16)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    assert torch.equal(loaded(x), clf(x))
    assert loaded.attributes == PROBES and info["crop"] == [0.72, 0.555]
    with pytest.raises(UserError, match=r"classifies 16px images .* makes 32px") as err:
        load_classifier(path, resolution=32)
    assert "\n" not in str(err.value)
    garbage = tmp_path / "g.pt"
    torch.save({"format": "something-else"}, garbage)
    with pytest.raises(UserError, match="not an attribute classifier"):
        load_classifier(garbage)


def test_holdout_report_hand_computed():
    # attribute 0: labels 1,1,1,0; predictions 1,0,1,0 -> accuracy 3/4; the *training* majority
    # is 0 -> baseline 1/4; TPR 2/3, TNR 1 -> balanced 5/6. attribute 1: all 0, predicted
    # 0,0,0,1 -> accuracy 3/4, training majority 0 -> baseline 1, balanced = TNR alone = 3/4.
    labels = torch.tensor([[1, 0], [1, 0], [1, 0], [0, 0]])
    probs = torch.tensor([[0.9, 0.1], [0.4, 0.2], [0.5, 0.3], [0.1, 0.7]])
    train_labels = torch.tensor([[1, 0], [0, 0], [0, 1]])
    report = holdout_report(probs, labels, train_labels)
    assert report["accuracy"] == pytest.approx([0.75, 0.75])
    assert report["baseline"] == pytest.approx([0.25, 1.0])
    assert report["balanced"] == pytest.approx([5 / 6, 0.75])
    assert report["count"] == 4


def test_lr_schedule_and_training_loop_on_tiny_data():
    assert lr_at(0.0, 1.0) == 0 and lr_at(0.05, 1.0) == pytest.approx(1.0)
    assert lr_at(0.525, 1.0) == pytest.approx(0.5) and lr_at(1.0, 1.0) == pytest.approx(0.0)
    images = torch.randint(0, 256, (40, 3, 16, 16), dtype=torch.uint8)
    labels = (images[:, 0].float().mean((1, 2)) > 127).long()[:, None].repeat(1, 2)
    opts = TrainOptions(epochs=2, batch_size=16, bf16="false").check()
    clf, seen = train_classifier(images, labels, attributes=["A", "B"], opts=opts, progress=False)
    assert seen == 2 * 2 * 16  # 2 epochs of 40 // 16 = 2 batches
    assert not clf.training and clf.resolution == 16 and clf.attributes == ["A", "B"]
    budget = TrainOptions(epochs=2, batch_size=16, bf16="false", max_time_s=1e-9).check()
    _, seen = train_classifier(images, labels, attributes=["A", "B"], opts=budget, progress=False)
    assert seen == 0  # the time budget ends the schedule, whatever epochs says
    with pytest.raises(ConfigError, match="bf16"):
        TrainOptions(bf16="maybe").check()


def test_attributes_train_mode_on_the_celeba_sample(tmp_path, celeba_root, shared_cache_dir):
    from attributes import attributes

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="attributes",
            overrides=[
                f"data.root={celeba_root}", f"paths.cache_dir={shared_cache_dir}",
                f"paths.root_dir={ROOT}", f"out_dir={tmp_path}", "data.limit=48",
                "resolution=16", "train.epochs=1", "train.batch_size=16", "train.bf16=false",
                "device=cpu",
            ],
        )  # fmt: skip
    assert cfg.data.holdout == 1000  # the config's own override of conf/data/celeba.yaml
    result = attributes(cfg)
    report = result["report"]
    assert report["count"] == 48 and len(report["accuracy"]) == 40
    assert result["images_seen"] == 3 * 16
    clf, info = load_classifier(tmp_path / "classifier.pt", resolution=16)
    assert clf.attributes[20] == "Male" and info["crop"] == [0.72, 0.555]
    assert info["holdout"]["baseline"] == report["baseline"]


def test_attribute_names_are_checked():
    names = ["Male", "Smiling", "Young"]
    assert parse_request(["Male", "~Young"], names) == [("Male", True), ("Young", False)]
    assert parse_request(["-Smiling"], names) == [("Smiling", False)]
    with pytest.raises(ConfigError, match="unknown attributes entry 'Smilling'; valid: Male") as e:
        parse_request(["Smilling"], names)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="twice"):
        parse_request(["Male", "~Male"], names)


# ---------------------------------------------------------------------------------------------
# Linear separability
# ---------------------------------------------------------------------------------------------


def test_entropy_against_hand_computed_values():
    assert entropy([0.5, 0.5]) == pytest.approx(LN2)
    assert entropy([[0.25, 0.25], [0.5, 0.0]]) == pytest.approx(1.5 * LN2)
    # X = [0,0,1,1], Y = [0,1,1,1]: H(X,Y) = 1.5 ln2, H(X) = ln2 -> H(Y|X) = 0.5 ln2
    assert conditional_entropy([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx(0.5 * LN2)
    assert conditional_entropy([0, 1, 0, 1], [0, 0, 1, 1]) == pytest.approx(LN2)  # independent
    assert conditional_entropy([1, 0, 1, 0], [1, 0, 1, 0]) == pytest.approx(0.0)
    # H(Y|X) = 3/4 * H(1/3, 2/3) + 1/4 * 0
    h = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3))
    assert conditional_entropy([0, 0, 0, 1], [0, 1, 1, 1]) == pytest.approx(0.75 * h)
    assert separability_score([LN2, LN2, 0.0]) == pytest.approx(4.0)


def test_a_linear_classifier_makes_its_direction_exactly_separable():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 8))
    u = rng.standard_normal(8)
    u /= np.linalg.norm(u)
    p = 1 / (1 + np.exp(-6 * (x @ u)))
    # Planted noise among the unconfident: labels flipped where the classifier is unsure. Keeping
    # the most confident half must leave them out.
    unsure = np.abs(x @ u) < 0.3
    p[unsure] = np.where(p[unsure] > 0.5, 0.45, 0.55)
    # attribute 1: the same label for every latent (x carries nothing): H(Y|X) = H(Y)
    p1 = np.where(np.arange(400) % 4 == 0, 0.99, 0.01)
    entropies, planes = attribute_entropies(x, np.stack([p, p1], 1), keep_fraction=0.5)
    assert entropies[0] == pytest.approx(0.0, abs=1e-12)
    assert float(planes[0].normal @ u) > 0.95  # the SVM's normal is the planted direction
    kept = most_confident(p, 0.5)
    assert len(kept) == 200 and not unsure[kept].any()
    assert np.all(np.maximum(p[kept], 1 - p[kept]).min() >= np.maximum(p, 1 - p)[
        np.setdiff1d(np.arange(400), kept)].max())  # fmt: skip
    constant = np.zeros((400, 3))
    h1, _ = attribute_entropies(constant, p1[:, None], keep_fraction=1.0)
    assert h1[0] == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))


def test_linear_separability_of_a_tiny_generator(planted):
    G, probe = planted["G"], planted["probe"]
    result = linear_separability(G, probe, num_samples=64, seeds=[0, 1], batch_size=32)
    assert result["num_samples"] == 64 and result["seeds"] == [0, 1]
    for space in ("z", "w"):
        assert len(result[space]) == 2
        assert all(1.0 <= s <= 2.0 ** len(PROBES) for s in result[space])
        assert result[space][0] == pytest.approx(
            separability_score(result[f"entropies_{space}"][0])
        )
    again = linear_separability(G, probe, num_samples=64, seeds=[0], batch_size=32)
    assert again["w"][0] == result["w"][0]  # seeded: the same faces, the same number


# ---------------------------------------------------------------------------------------------
# Directions and editing
# ---------------------------------------------------------------------------------------------


def test_orthogonalize_against_hand_computed_directions():
    d = torch.tensor([1.0, 1.0, 0.0]) / math.sqrt(2)
    assert torch.allclose(
        orthogonalize(d, [torch.tensor([1.0, 0.0, 0.0])]), torch.tensor([0.0, 1, 0])
    )
    conditions = [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 0.0])]
    out = orthogonalize(torch.tensor([1.0, 2.0, 3.0]), conditions)
    assert torch.allclose(out, torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    with pytest.raises(UserError, match="span"):
        orthogonalize(torch.tensor([2.0, 3.0, 0.0]), conditions)
    # zero conditions (attributes without a direction) and dependent ones change nothing
    degenerate = [torch.zeros(3), torch.tensor([1.0, 0, 0]), torch.tensor([2.0, 0, 0])]
    assert torch.allclose(orthogonalize(d, degenerate), torch.tensor([0.0, 1, 0]), atol=1e-6)


@pytest.mark.parametrize("method", ["svm", "mean"])
def test_directions_recover_a_planted_normal_in_w(method):
    torch.manual_seed(0)
    w = torch.randn(300, 16) * 2 + 1
    u = torch.nn.functional.normalize(torch.randn(16), dim=0)
    probs = torch.sigmoid(4 * ((w - 1) @ u))[:, None]
    d = fit_directions(w, probs, ["A"], method=method)
    assert d.method == method
    assert float(d.normals[0] @ u) > 0.95
    # the boundary passes through the planted one's point w = 1 (the data's centre)
    assert abs(float(torch.ones(16) @ d.normals[0] + d.offsets[0])) < 0.5
    assert float(d.scales[0]) == pytest.approx(float((w @ d.normals[0]).std()), rel=1e-5)
    assert float(d.scales[0]) == pytest.approx(2.0, rel=0.2)  # std of w along u


def test_mean_direction_is_the_class_means_difference():
    """method=mean: the normal is exactly the normalised difference of the classes' mean w, with
    the boundary half way between them, and it points along the planted attribute."""
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(400, 256, generator=gen)
    u = torch.zeros(256)
    u[0] = 1.0
    probs = torch.sigmoid(3 * w[:, 0] + 0.5 * torch.randn(400, generator=gen))[:, None]
    mean = fit_directions(w, probs, ["A"], method="mean", keep_fraction=1.0)
    y = probs[:, 0] >= 0.5
    lo, hi = w[~y].double().mean(0), w[y].double().mean(0)
    expected = torch.nn.functional.normalize(hi - lo, dim=0).float()
    torch.testing.assert_close(mean.normals[0], expected, rtol=1e-5, atol=1e-6)
    assert float(mean.offsets[0]) == pytest.approx(
        -float((lo + hi) / 2 @ (hi - lo) / (hi - lo).norm()), rel=1e-5
    )
    assert float(mean.normals[0] @ u) > 0.6  # 400 points in 256 dimensions: a noisy estimate
    with pytest.raises(ConfigError, match=r"directions\.method"):
        fit_directions(w, probs, ["A"], method="lda")


def test_edits_on_a_planted_direction_are_monotonic_and_keep_what_is_kept(planted):
    G, probe, directions = planted["G"], planted["probe"], planted["directions"]
    seeds = list(range(16))
    measured = {}
    for keep in ([], ["Warm"]):
        direction, scale = edit_direction(directions, "Red", keep)
        images = edit_images(G, seeds, direction, scale, STRENGTHS, batch_size=64)
        measured[tuple(keep)] = measure_edit(
            probe, images, num_seeds=len(seeds), attribute="Red", keep=["Warm"]
        )
    for m in measured.values():
        assert np.all(np.diff(m["mean"]) > 0), m["mean"]  # rises with every step
        assert m["agreement"][-1] >= 0.9 and m["agreement"][0] <= 0.1
    warm_free = np.asarray(measured[()]["kept_mean"]["Warm"])
    warm_kept = np.asarray(measured[("Warm",)]["kept_mean"]["Warm"])
    assert np.abs(warm_kept - warm_kept[3]).max() < 0.1  # kept: moves by less than 0.1
    assert np.abs(warm_free - warm_free[3]).max() > 0.3  # ... where a plain edit moves it
    direction, _ = edit_direction(directions, "Red", ["Warm"])
    assert abs(float(direction @ directions.normals[2])) < 1e-6


def test_directions_live_in_generator_pt(planted, tmp_path):
    loaded = load_directions(planted["gen"])
    assert loaded.attributes == PROBES
    assert torch.equal(loaded.normals, planted["directions"].normals)
    _, info = load_generator(planted["gen"])  # the extra key does not disturb loading
    assert info["resolution"] == 16
    with pytest.raises(UserError, match="has no attribute directions") as err:
        load_directions(planted["plain"])
    assert "\n" not in str(err.value)
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "stylegan": {}}, ckpt)
    with pytest.raises(UserError, match=r"stored in a generator\.pt"):
        store_directions(ckpt, loaded)
    from attributes import attributes

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="attributes",
            overrides=["mode=directions", f"ckpt={ckpt}", "classifier=missing.pt", "device=cpu"],
        )
    with pytest.raises(UserError, match=r"stored in a generator\.pt"):  # before anything runs
        attributes(cfg)
    with pytest.raises(UserError, match="while keeping it"):
        edit_direction(loaded, "Red", ["Red"])
    assert isinstance(Directions.from_payload(loaded.to_payload()), Directions)


def sample_config(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="sample", overrides=list(overrides))


def test_sample_edit_figure_and_its_measurement(planted, tmp_path, monkeypatch, capsys):
    from sample import sample

    probe = planted["probe"]
    monkeypatch.setattr(
        "stylegan.attributes.classifier.load_classifier", lambda *a, **k: (probe, {})
    )
    written = sample(sample_config(
        f"ckpt={planted['gen']}", f"out_dir={tmp_path}", "figure=edit", "attribute=Red",
        "keep=[Warm]", "edit.seeds=[0,1,2]", "strengths=[-2,0,2]", "edit.video=true",
        "edit.steps=3", "edit.mp4=false", "classifier=probe.pt", "batch_size=16",
    ))  # fmt: skip
    names = sorted(p.name for p in written)
    assert names == [
        "edit_Red_keep-Warm_seeds0-2_s-2..2.gif",
        "edit_Red_keep-Warm_seeds0-2_s-2..2.png",
    ]
    from PIL import Image

    with Image.open(tmp_path / names[1]) as im:
        assert im.size == (3 * 18 + 2, 3 * 18 + 2)  # 3 strengths x 3 seeds of 16px, padding 2
    out = capsys.readouterr().out
    assert "Red mean probability by strength" in out and "kept Warm" in out


# ---------------------------------------------------------------------------------------------
# Conditional sampling
# ---------------------------------------------------------------------------------------------


def test_conditional_faces_agree_with_the_request(planted):
    G, probe, directions = planted["G"], planted["probe"], planted["directions"]
    request = [("Red", True), ("Green", False)]
    runs = {}
    for shift in (0.0, 1.0):
        found = conditional_faces(G, probe, directions, request, n=8, shift=shift, batch_size=16,
                                  progress=False)  # fmt: skip
        p = torch.sigmoid(probe(found.images))
        assert len(found.seeds) == 8 and bool((p[:, 0] >= 0.5).all() and (p[:, 1] < 0.5).all())
        runs[shift] = found
    assert runs[1.0].agreement > runs[0.0].agreement  # the shift does part of the work
    # An attribute without a direction (a zero normal) is left to rejection alone.
    no_green = Directions.from_payload(directions.to_payload())
    no_green.normals = no_green.normals.clone()
    no_green.normals[1] = 0
    found = conditional_faces(G, probe, no_green, request, n=4, batch_size=16, progress=False)
    p = torch.sigmoid(probe(found.images))
    assert bool((p[:, 0] >= 0.5).all() and (p[:, 1] < 0.5).all())
    assert runs[1.0].agreement >= 0.9
    assert runs[0.0].cost == pytest.approx(runs[0.0].drawn / 8)
    for found in runs.values():  # drawing stops at the 8th kept face, whatever the batch size
        assert found.seeds[-1] == found.drawn - 1 and found.agreed == 8


def test_sample_faces_with_attributes(planted, tmp_path, monkeypatch, capsys):
    from sample import sample

    probe = planted["probe"]
    monkeypatch.setattr(
        "stylegan.attributes.classifier.load_classifier", lambda *a, **k: (probe, {})
    )
    written = sample(sample_config(
        f"ckpt={planted['gen']}", f"out_dir={tmp_path}", "n=4", "attributes=[Red,-Green]",
        "classifier=probe.pt", "batch_size=16",
    ))  # fmt: skip
    assert [p.name for p in written] == ["faces_Red-noGreen_seed0_n4.png"]
    assert "4 faces with [Red, ~Green]: classifier agreement" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# One-line errors, exit 2 (in process; two through the real command lines, started together)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["figure=edit", "attribute=Smilling"], "unknown attribute 'Smilling'; valid: Red, Green"),
        (["figure=edit", "attribute=Red", "keep=[Bald]"], "unknown keep attribute 'Bald'"),
        (["attributes=[Red,-Bald]"], "unknown attributes entry 'Bald'"),
        (["figure=edit"], "needs attribute=NAME"),
        (["figure=edit", "attribute=Red", "strengths=[]"], "at least one"),
    ],
)
def test_bad_attribute_options_are_one_line_before_anything_is_written(
    planted, tmp_path, overrides, message
):
    from sample import sample

    out = tmp_path / "out"
    cfg = sample_config(f"ckpt={planted['gen']}", f"out_dir={out}", "classifier=none.pt",
                        *overrides)  # fmt: skip
    with pytest.raises(UserError, match=message) as err:
        sample(cfg)
    assert "\n" not in str(err.value) and not out.exists()


@pytest.fixture(scope="module")
def cli_errors(planted):
    root = planted["root"]
    clf32 = root / "classifier32.pt"
    torch.manual_seed(0)
    clf = AttributeClassifier(attributes=PROBES, resolution=32)
    atomic_torch_save(classifier_export(clf, crop=[0.72, 0.555]), clf32)
    jobs = {
        "other_resolution": ["attributes.py", "mode=separability", f"ckpt={planted['gen']}",
                             f"classifier={clf32}", "separability.num_samples=8"],
        "no_directions": ["sample.py", f"ckpt={planted['plain']}", "figure=edit",
                          "attribute=Red"],
    }  # fmt: skip
    procs = {}
    for name, args in jobs.items():
        cmd = [sys.executable, *args, f"hydra.run.dir={root / name}"]
        procs[name] = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = (proc.returncode, out, err)
    return results


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("other_resolution", "classifies 32px images but the generator makes 16px"),
        ("no_directions", "has no attribute directions"),
    ],
)
def test_cli_errors_are_one_line_exit_2(cli_errors, case, message):
    returncode, out, err = cli_errors[case]
    assert returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert "Traceback" not in out + err
