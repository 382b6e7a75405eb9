"""Scenario TOML loading and validation; CLI errors of `jaxcost optimize`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jaxcost.errors import InfeasibleError, ScenarioError
from jaxcost.io.paths import scenarios_dir
from jaxcost.policy.scenario import load_scenario, scenario_from_dict


def _base(**over):
    d = {
        "regime": "2025-04",
        "model": {"name": "llama2-7b"},
        "training": {"tokens": 1e12},
        "chips": {"candidates": ["Ascend910B", {"name": "A100-SXM", "stock": 64,
                                                 "owned": True}]},
        "limits": {"budget_usd": 1e8},
    }
    d.update(over)
    return d


@pytest.mark.parametrize("path", sorted(scenarios_dir().glob("*.toml")),
                         ids=lambda p: p.stem)
def test_shipped_scenarios_load(path):
    sc = load_scenario(path)
    assert sc.name == path.stem
    assert sc.tokens > 0 and sc.candidates


def test_default_scenario_is_default():
    assert load_scenario().name == "default"


def test_owned_stock_price_defaults_to_zero():
    sc = scenario_from_dict(_base())
    owned = [c for c in sc.candidates if c.owned]
    assert owned and owned[0].price_usd == 0.0 and owned[0].stock == 64


def _err(d) -> str:
    with pytest.raises(ScenarioError) as exc:
        scenario_from_dict(d, path="s.toml")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("s.toml")
    return msg


def test_unknown_chip_suggests_close_names():
    msg = _err(_base(chips={"candidates": ["H800-SXM5"]}))
    assert "unknown chip 'H800-SXM5'" in msg and "H800-SXM" in msg
    assert "chips.candidates[0].name" in msg


def test_negative_budget():
    msg = _err(_base(limits={"budget_usd": -1.0}))
    assert "limits.budget_usd" in msg and "non-negative" in msg


@pytest.mark.parametrize("d, key", [
    (_base(objectve="time"), "objectve"),
    (_base(limits={"budget": 1e6}), "limits.budget"),
    (_base(chips={"candidates": [{"name": "H20", "stok": 3}]}),
     "chips.candidates[0].stok"),
])
def test_unknown_key(d, key):
    msg = _err(d)
    assert f"'{key}'" in msg and "unknown key" in msg


@pytest.mark.parametrize("d, key", [
    (_base(mixed="yes"), "mixed"),
    (_base(training={"tokens": "many"}), "training.tokens"),
    (_base(limits={"power_w": True}), "limits.power_w"),
    (_base(objective="speed"), "objective"),
    (_base(regime="1999-01"), "regime"),
    (_base(model={"name": "no-such-model"}), "model.name"),
    (_base(search={"pp_layout": "balanced"}), "search.pp_layout"),
    (_base(search={"dp_overlap": "yes"}), "search.dp_overlap"),
    (_base(chips={"candidates": [{"name": "H20", "scaleout_bytes_per_s": 0.0}]}),
     "chips.candidates[0].scaleout_bytes_per_s"),
    (_base(chips={"candidates": [{"name": "H20", "scaleout_bytes_per_s": "fast"}]}),
     "chips.candidates[0].scaleout_bytes_per_s"),
])
def test_wrong_type_or_value(d, key):
    assert f"'{key}'" in _err(d)


def test_candidate_network_replaces_the_chips_and_not_its_class():
    from jaxcost.model.hardware import load_chips
    from jaxcost.policy.export_control import classify

    sc = scenario_from_dict(_base(chips={"candidates": [
        {"name": "H20", "scaleout_bytes_per_s": 6.25e9}, "Ascend910B"]}))
    h20, b = sc.candidates
    spec = load_chips()["H20"]
    assert h20.chip.scaleout_bytes_per_s == 6.25e9 != spec.scaleout_bytes_per_s
    b_spec = load_chips()["Ascend910B"]
    assert b.chip.scaleout_bytes_per_s == b_spec.scaleout_bytes_per_s
    assert classify(h20.chip, "2025-04") == classify(spec, "2025-04")


def test_search_plan_options_reach_the_enumeration():
    sc = scenario_from_dict(_base(search={"pp_layout": "auto", "dp_overlap": True}))
    space = sc.search.plan_space()
    assert (space.pp_balance, space.tp_overlap, space.dp_overlap) == ("auto", False,
                                                                      True)
    assert scenario_from_dict(_base()).search.plan_space().pp_balance is False


def test_cost_objective_needs_deadline():
    assert "max_time_to_train_s" in _err(_base(objective="cost"))


def test_toml_syntax_error(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("regime = \n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(p)


def test_infeasible_is_a_scenario_error():
    assert issubclass(InfeasibleError, ScenarioError)


def _run_cli(args, cwd):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "jaxcost", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=120)


_TOML = """regime = "2025-04"
[model]
name = "llama2-7b"
[training]
tokens = 1e12
[chips]
candidates = [{CHIPS}]
[limits]
budget_usd = {BUDGET}
"""


@pytest.mark.parametrize("chips, budget, expect", [
    ('"H800-SXM5"', "1e8", "unknown chip"),
    ('"Ascend910B"', "-5", "non-negative"),
    ('"Ascend910B"', "1e5", "budget_usd=1e+05 buys fewer chips than the smallest "
                            "cluster that fits the model in memory"),
])
def test_cli_errors_one_line_exit_2_no_output(tmp_path, chips, budget, expect):
    p = tmp_path / "s.toml"
    p.write_text(_TOML.replace("{CHIPS}", chips).replace("{BUDGET}", budget))
    out = tmp_path / "out"
    r = _run_cli(["optimize", str(p), "--out", str(out)], cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], r.stderr
    assert not out.exists()
    assert r.stdout == ""


def test_module_runs_from_elsewhere():
    # the package's scenarios folder is found independently of the working folder
    assert Path(scenarios_dir() / "default.toml").is_file()
