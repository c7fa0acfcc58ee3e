"""The typed config schemas (stylegan/config.py): a wrong type on any key of the typed configs of
train.py, sample.py and fid.py is one line on stderr and exit status 2, found while composing
(before anything runs); every YAML option composes against its schema.

The per-key cases are generated from the composed configs, so a key added to a YAML with its
schema field is covered without editing this file. They call each entry point's ``main()``
in-process with ``sys.argv`` set, as the command line does; three real subprocesses check the
same on the actual commands.
"""

import subprocess
import sys
from dataclasses import is_dataclass
from typing import Any

import pytest
from conftest import CONF_DIR, ROOT, compose_config, main_in_process
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.nodes import AnyNode, BooleanNode, FloatNode, IntegerNode, StringNode

import fid
import sample
import train

# A value of the wrong type for each kind of typed node.
BAD_VALUE = {IntegerNode: "abc", FloatNode: "abc", BooleanNode: "maybe", StringNode: "[1,2]"}
ENTRY_POINTS = {"train": train, "sample": sample, "fid": fid}
# (config, overrides that select a group option) whose typed keys are tested.
CONFIGS = [
    ("train", []),
    ("train", ["loss=bce"]),
    ("train", ["augment=ada"]),
    ("sample", []),
    ("fid", []),
]


def typed_keys(node: DictConfig, prefix: str = "") -> dict[str, str]:
    """{dotted key: a wrong-typed value} for every leaf a schema types under ``node``; untyped
    subtrees (``model``, ``trainer``, ... typed by their ``_target_``) and ``Any`` keys are left
    to their own checks."""
    keys: dict[str, str] = {}
    for key in node:
        child, full = node._get_node(key), f"{prefix}{key}"
        if str(key).startswith("_") or key == "hydra":
            continue
        if isinstance(child, DictConfig) and is_dataclass(OmegaConf.get_type(child)):
            keys.update(typed_keys(child, f"{full}."))  # a schema: its fields are typed
        elif isinstance(child, AnyNode) or child._metadata.ref_type is Any:
            continue  # a value of two shapes (psi), or an untyped group (model, trainer)
        elif isinstance(child, ListConfig | DictConfig):
            keys[full] = "abc"  # a typed list or dict (stage.batch_size) given a string
        else:
            keys[full] = BAD_VALUE[type(child)]
    return keys


CASES = sorted(
    {
        (name, key, value)
        for name, overrides in CONFIGS
        for key, value in typed_keys(compose_config(name, overrides)).items()
    }
)


def test_the_typed_keys_cover_every_documented_group():
    keys = {(name, key.split(".")[0]) for name, key, _ in CASES}
    for section in ("seed", "ckpt_path", "training", "stage", "loss", "data"):
        assert ("train", section) in keys
    for section in ("ckpt", "n", "psi", "truncation", "mixing", "noise_figure", "interpolation"):
        assert ("sample", section) in keys or section == "psi"  # psi: number or list (Any)
    for section in ("ckpt", "num_images", "truncation_psi", "floor", "data"):
        assert ("fid", section) in keys
    assert ("train", "loss.r1_gamma", "abc") in CASES and (
        "train",
        "loss.gp_weight",
        "abc",
    ) in CASES
    assert ("train", "stage.batch_size", "abc") in CASES
    assert ("train", "augment.target", "abc") in CASES
    assert ("sample", "save_individual", "maybe") in CASES


def run_main(monkeypatch, capsys, name: str, *args: str) -> tuple[int, list[str]]:
    """``python {name}.py *args`` in-process: (exit status, stderr lines). The task itself is
    replaced by a tripwire: these configs must be refused before it runs."""
    module = ENTRY_POINTS[name]
    task = {"train": "train", "sample": "sample", "fid": "evaluate_fid"}[name]

    def tripwire(cfg):
        raise AssertionError(f"{name}.py composed a config it should have refused: {args}")

    monkeypatch.setattr(module, task, tripwire)
    return main_in_process(monkeypatch, capsys, module, *args)


@pytest.mark.parametrize(("name", "key", "value"), CASES, ids=[f"{n}:{k}" for n, k, _ in CASES])
def test_a_wrong_type_is_one_line_and_exit_2(monkeypatch, capsys, name, key, value):
    overrides = ["loss=bce"] if key in ("loss.r1_gamma", "loss.r1_interval") else []
    if key.startswith("augment.") and key != "augment.mode":
        overrides = ["augment=ada"]
    status, lines = run_main(monkeypatch, capsys, name, *overrides, f"{key}={value}")
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}={value}: "), lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["n=1.5"], "could not be converted to Integer"),
        (["truncation.seeds=[0,a]"], "could not be converted to Integer"),
        (["interpolation.mp4=perhaps"], "is not a valid bool"),
        (["nosuchkey=1"], "Could not override 'nosuchkey'"),
        (["figure=["], "figure=["),  # an override Hydra cannot parse
    ],
)
def test_sample_config_errors_name_the_key(monkeypatch, capsys, args, message):
    status, lines = run_main(monkeypatch, capsys, "sample", *args)
    assert status == 2 and len(lines) == 1 and message in lines[0], lines


def test_an_unknown_group_option_names_the_options(monkeypatch, capsys):
    status, lines = run_main(monkeypatch, capsys, "train", "loss=nope")
    assert status == 2 and lines == [
        "error: In 'train': Could not find 'loss/nope' (options: bce, wgan_gp)"
    ]


def test_keys_of_two_shapes_are_checked_by_their_owner_in_one_line(tmp_path, capsys):
    """psi, figure, truncation.psis and mixing.layers are typed Any (a number or a list, a name or
    a list): sample.py's own checks refuse a wrong value before loading anything."""
    cases = [
        (["psi=abc"], "psi must be a number"),
        (["figure=3"], "figure must be one of"),
        (["figure=truncation", "truncation.psis=abc"], "truncation.psis must be a number"),
        (["figure=mixing", "mixing.layers=[[0]]"], "layer range must be"),
    ]
    for args, message in cases:
        cfg = compose_config("sample", [f"ckpt={tmp_path}/no.pt", f"out_dir={tmp_path}", *args])
        with pytest.raises(sample.UserError, match=message) as err:
            sample.sample(cfg)
        assert "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("group", ["stage", "loss", "data"])
def test_every_group_option_composes_against_its_schema(group):
    options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
    options = [o for o in options if o != "paper_schedule"]  # a base, not a stage by itself
    assert options
    for option in options:
        cfg = compose_config("train", [f"{group}={option}"])
        assert OmegaConf.get_type(cfg[group]).__module__ == "stylegan.config", option
    for option in options if group == "data" else []:
        assert OmegaConf.get_type(compose_config("fid", [f"data={option}"]).data).__name__ == (
            "DataConfig"
        )


def test_a_yaml_key_without_a_schema_field_does_not_compose(tmp_path):
    """The schema is the list of keys: a knob added to a YAML needs its one-line field."""
    conf = tmp_path / "conf"
    (conf / "loss").mkdir(parents=True)
    (conf / "loss" / "bce.yaml").write_text(
        (CONF_DIR / "loss" / "bce.yaml").read_text() + "new_knob: 1\n"
    )
    from hydra import compose, initialize_config_dir

    with (
        initialize_config_dir(config_dir=str(conf), version_base="1.3"),
        pytest.raises(Exception, match="new_knob"),
    ):
        compose("loss/bce")


def test_the_commands_print_one_line_and_exit_2():
    """The real commands, started together: a wrong type on one key of each."""
    commands = {
        "train.py": ["training.n_critic=two"],
        "sample.py": ["ckpt=x.pt", "n=abc"],
        "fid.py": ["ckpt=x.pt", "data.hflip_p=half"],
    }
    procs = {
        script: subprocess.Popen(
            [sys.executable, script, *args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for script, args in commands.items()
    }
    for script, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        key = commands[script][-1]
        assert proc.returncode == 2, (script, err)
        assert err.strip().splitlines() == [err.strip()] and err.startswith(f"error: {key}: ")
        assert "Traceback" not in out + err and "HYDRA_FULL_ERROR" not in out + err


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.precision=abc", "trainer"),
        ("callbacks.samples.every_kimg=abc", "callbacks.samples"),
    ],
)
def test_untyped_groups_name_their_key_in_one_line(train_config, override, key):
    """Groups without a schema (Lightning's Trainer, callbacks, loggers) are checked by the class
    they build; train.py turns its complaint into one line naming the config key."""
    from stylegan.errors import ConfigError
    from train import train

    with pytest.raises(ConfigError) as info:
        train(train_config(override))
    message = str(info.value)
    assert message.startswith(f"{key}: ") and "\n" not in message
