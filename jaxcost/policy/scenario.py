"""Scenarios: what to optimise, read from a TOML file and validated.

A scenario names the model and token budget, the candidate chips (with optional stock
and price overrides), the export-control regime, and the limits (budget, power, chip
count, aggregate TPP), and says what to minimise. :func:`load_scenario` checks every
key and value and raises :class:`~jaxcost.errors.ScenarioError` with one line naming
the file, the key and what was expected; it never returns a half-valid scenario.

Format (every key but ``[model]``, ``[training] tokens`` and ``[chips] candidates`` is
optional)::

    name = "h100_vs_h800"              # default: the file stem
    description = "..."
    # regime: an id of data/regimes (export_control.load_regime)
    regime = "2025-04"
    objective = "time"                 # "time" (time-to-train) or "cost" (capex)
    allow_licensed = false             # chips that need a case-by-case licence
    mixed = true                       # allow clusters of several chip types

    [model]
    name = "llama2-7b"                 # a row of data/models.csv ...
    global_batch_seqs = 1024           # ... with optional overrides
    # or explicit dimensions (label = display name): num_layers, d_model, num_heads,
    # seq_len, global_batch_seqs, vocab_size, ...

    [training]
    tokens = 2e12                      # tokens to train on

    [chips]
    candidates = [
      "H800-SXM",                                           # key or full name
      { name = "A100-SXM", stock = 45000, price_usd = 0, owned = true },
      { name = "H20", scaleout_bytes_per_s = 2.5e10 },      # the cluster's NICs
    ]

    [limits]
    budget_usd = 5e8                   # capex, USD (tariffs and revenue share included)
    power_w = 3e7                      # IT power x PUE, W
    pue = 1.3                          # power usage effectiveness (default 1)
    max_chips = 100000
    tpp_cap = 1e9                      # aggregate TPP of *bought* chips
    max_time_to_train_s = 7.776e6      # required with objective = "cost"

    [search]                           # optimiser knobs (defaults are fine)
    top = 10                           # clusters to report
    cross_type_efficiency = 0.9        # throughput kept by the non-largest groups
    grid_steps_per_octave = 2          # count grid density
    relaxed_steps = 300                # Adam steps of the relaxed problem
    max_plans = 200000                 # plan-enumeration cap per chip type
    pp_layout = "uniform"              # or "auto": uneven pipeline splits where needed
    tp_overlap = false                 # plans pipeline TP communication with the GEMMs
    dp_overlap = false                 # plans overlap the gradient reduction (buckets)

``scaleout_bytes_per_s`` sets the scale-out (NIC) bandwidth per chip and direction of
the cluster built from that candidate, in place of the chip table's (a cluster with
fewer or slower NICs than the reference design, e.g. 4 x 100 Gb/s per 8-chip node =
6.25e9); the export-control classification does not depend on it.

``owned = true`` marks chips already held (e.g. a stockpile bought before a rule): the
regime does not apply to them, they carry no tariff, and they do not count against
``tpp_cap``; their price defaults to 0 and ``stock`` is required.

All quantities are SI (USD, W, s, tokens); the TOML keys carry their unit.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from pathlib import Path
from typing import Any

from jaxcost.errors import JaxcostError, ScenarioError
from jaxcost.io.paths import default_scenario_path
from jaxcost.model import hardware, workload
from jaxcost.policy import export_control
from jaxcost.search.space import PlanSpace

__all__ = [
    "Candidate",
    "Scenario",
    "SearchOptions",
    "load_scenario",
    "scenario_from_dict",
]


_OBJECTIVES = ("time", "cost")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One candidate chip type of a scenario.

    Attributes:
      chip: the chip's specification (``ChipSpec``).
      stock: most chips of this type available (``inf`` = unlimited).
      price_usd: unit price before tariffs, USD (the chip table's, unless overridden).
      owned: already held: exempt from the regime, tariffs and the TPP cap.
    """

    chip: Any
    stock: float
    price_usd: float
    owned: bool = False

    @property
    def key(self) -> str:
        return self.chip.key


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """Optimiser settings of a scenario (``[search]``)."""

    top: int = 10
    cross_type_efficiency: float = 0.9
    grid_steps_per_octave: int = 2
    relaxed_steps: int = 300
    max_plans: int = 200_000
    pp_layout: str = "uniform"
    tp_overlap: bool = False
    dp_overlap: bool = False

    def plan_space(self) -> PlanSpace:
        """The :class:`jaxcost.search.space.PlanSpace` of the searched plans."""
        return PlanSpace(
            pp_balance="auto" if self.pp_layout == "auto" else False,
            tp_overlap=self.tp_overlap,
            dp_overlap=self.dp_overlap,
        )


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A validated optimisation scenario (configuration; not a pytree).

    Attributes:
      name: scenario name (file stem unless given).
      path: the file it was read from ("" when built from a dict).
      description: free text.
      model: the ``TransformerConfig`` to train.
      tokens: tokens to train on.
      candidates: candidate chip types.
      regime: export-control regime id (``export_control.load_regime``).
      objective: ``"time"`` (minimise time-to-train) or ``"cost"`` (minimise capex).
      allow_licensed: allow chips that need a case-by-case licence.
      mixed: allow clusters mixing chip types.
      budget_usd, power_w, max_chips, tpp_cap, max_time_to_train_s: limits (``inf``
        when absent).
      pue: power usage effectiveness, multiplies the chips' TDP.
      search: optimiser settings.
    """

    name: str
    path: str
    description: str
    model: Any
    tokens: float
    candidates: tuple[Candidate, ...]
    regime: str
    objective: str = "time"
    allow_licensed: bool = False
    mixed: bool = True
    budget_usd: float = math.inf
    power_w: float = math.inf
    pue: float = 1.0
    max_chips: float = math.inf
    tpp_cap: float = math.inf
    max_time_to_train_s: float = math.inf
    search: SearchOptions = dataclasses.field(default_factory=SearchOptions)

    def replace(self, **changes) -> Scenario:
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------- checks

_TOP_KEYS = {
    "name": str,
    "description": str,
    "regime": str,
    "objective": str,
    "allow_licensed": bool,
    "mixed": bool,
    "model": dict,
    "training": dict,
    "chips": dict,
    "limits": dict,
    "search": dict,
}
_TRAINING_KEYS = {"tokens": float}
_CHIPS_KEYS = {"candidates": list}
_CANDIDATE_KEYS = {
    "name": str,
    "stock": float,
    "price_usd": float,
    "owned": bool,
    "scaleout_bytes_per_s": float,
}
_LIMIT_KEYS = {
    "budget_usd": float,
    "power_w": float,
    "pue": float,
    "max_chips": float,
    "tpp_cap": float,
    "max_time_to_train_s": float,
}
_SEARCH_KEYS = {
    "top": int,
    "cross_type_efficiency": float,
    "grid_steps_per_octave": int,
    "relaxed_steps": int,
    "max_plans": int,
    "pp_layout": str,
    "tp_overlap": bool,
    "dp_overlap": bool,
}
_MODEL_DIM_KEYS = {
    "num_layers": int,
    "d_model": int,
    "num_heads": int,
    "seq_len": int,
    "global_batch_seqs": int,
    "vocab_size": int,
    "d_ff": int,
    "num_kv_heads": int,
    "head_dim": int,
    "num_experts": int,
    "top_k": int,
    "moe_d_ff": int,
    "num_dense_layers": int,
    "num_shared_experts": int,
}
_MODEL_KEYS = {
    "name": str,
    "label": str,
    "mlp": str,
    "tied_embeddings": bool,
    **_MODEL_DIM_KEYS,
}
#: keys that may override a named model's row
_MODEL_OVERRIDES = ("seq_len", "global_batch_seqs")

#: Largest integer a scenario may give (exact in float64); counts above it are refused.
_MAX_INT = 2**53

#: Largest values of the search options (far above any useful setting; a larger value
#: would only make the command run for ever).
_SEARCH_MAX = {
    "top": 10**6,
    "grid_steps_per_octave": 64,
    "relaxed_steps": 10**6,
    "max_plans": 10**9,
}

#: Largest token budget accepted (1e20: 10^5 times the largest published run).
_MAX_TOKENS = 1e20

_TYPE_WORDS = {
    str: "a string",
    bool: "true or false",
    float: "a number",
    int: "an integer",
    dict: "a table",
    list: "an array",
}


class _Ctx:
    """Where we are in the file, for error messages."""

    def __init__(self, path: str) -> None:
        self.path = path

    def error(self, key: str, message: str) -> ScenarioError:
        return ScenarioError(message, file=self.path, row=f"key '{key}'")

    def check_keys(self, table: dict, allowed: dict, prefix: str) -> None:
        for k in table:
            if k not in allowed:
                close = difflib.get_close_matches(k, list(allowed), n=1)
                hint = (
                    f"; did you mean '{close[0]}'?"
                    if close
                    else f"; expected one of {sorted(allowed)}"
                )
                raise self.error(f"{prefix}{k}", f"unknown key{hint}")

    def typed(self, table: dict, key: str, want: type, prefix: str, default=None):
        if key not in table:
            return default
        v = table[key]
        full = f"{prefix}{key}"
        if want is float:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise self.error(full, f"expected {_TYPE_WORDS[want]}, got {v!r}")
            v = float(v)
            if math.isnan(v):
                raise self.error(full, "expected a number, got nan")
            return v
        if want is int:
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not math.isfinite(v)
                or v != round(v)
            ):
                raise self.error(full, f"expected {_TYPE_WORDS[want]}, got {v!r}")
            if abs(v) > _MAX_INT:
                raise self.error(
                    full, f"expected an integer of magnitude <= 2^53, got {v:.6g}"
                )
            return int(v)
        if not isinstance(v, want):
            raise self.error(full, f"expected {_TYPE_WORDS[want]}, got {v!r}")
        return v

    def nonneg(
        self,
        value: float | None,
        key: str,
        *,
        positive: bool = False,
        default: float = math.inf,
    ) -> float:
        if value is None:
            return default
        if positive and not value > 0:
            raise self.error(key, f"expected a positive number, got {value!r}")
        if value < 0:
            raise self.error(key, f"expected a non-negative number, got {value!r}")
        return value


def _suggest(name: str, chips: dict) -> str:
    names = list(chips) + [c.name for c in chips.values()]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    if not close:
        folded = name.lower().replace(" ", "").replace("-", "")
        close = [
            n
            for n in names
            if folded and folded in n.lower().replace(" ", "").replace("-", "")
        ][:3]
    if close:
        return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    return f"; known keys: {', '.join(sorted(chips))}"


def _resolve_chip(name: str, chips: dict, ctx: _Ctx, key: str):
    if name in chips:
        return chips[name]
    by_name = {c.name.lower(): c for c in chips.values()}
    by_key = {k.lower(): c for k, c in chips.items()}
    low = name.strip().lower()
    if low in by_key:
        return by_key[low]
    if low in by_name:
        return by_name[low]
    raise ctx.error(key, f"unknown chip '{name}'{_suggest(name, chips)}")


def _build_model(table: dict, ctx: _Ctx):
    ctx.check_keys(table, _MODEL_KEYS, "model.")
    vals = {
        k: ctx.typed(table, k, t, "model.")
        for k, t in _MODEL_KEYS.items()
        if k in table
    }
    dims = {k: v for k, v in vals.items() if k in _MODEL_DIM_KEYS}
    name = vals.get("name")
    for k in _MODEL_OVERRIDES:
        if name is not None and k in dims and dims[k] < 1:
            raise ctx.error(f"model.{k}", f"expected an integer >= 1, got {dims[k]}")
    if (
        name is not None
        and set(dims) - set(_MODEL_OVERRIDES)
        or name is not None
        and ("mlp" in vals or "tied_embeddings" in vals)
    ):
        bad = sorted(
            (set(dims) - set(_MODEL_OVERRIDES))
            | ({"mlp", "tied_embeddings"} & set(vals))
        )
        raise ctx.error(
            f"model.{bad[0]}",
            f"with model.name only {list(_MODEL_OVERRIDES)} may be "
            "overridden; give either a name or explicit dimensions",
        )
    try:
        if name is not None:
            try:
                w = workload.get_model(name)
            except JaxcostError as exc:
                raise ctx.error("model.name", exc.detail) from None
            if dims:
                w = w.replace(**{k: float(v) for k, v in dims.items()})
            return w
        required = (
            "num_layers",
            "d_model",
            "num_heads",
            "seq_len",
            "global_batch_seqs",
            "vocab_size",
        )
        for r in required:
            if r not in dims:
                raise ctx.error(
                    f"model.{r}",
                    f"missing; give model.name or the dimensions {list(required)}",
                )
        return workload.TransformerConfig.create(
            name=str(table.get("label", "custom")),
            mlp=vals.get("mlp", "gelu"),
            tied_embeddings=vals.get("tied_embeddings", False),
            **dims,
        )
    except ScenarioError:
        raise
    except JaxcostError as exc:
        raise ctx.error(f"model.{exc.column or 'name'}", exc.detail) from None


def _build_candidates(table: dict, ctx: _Ctx, chips: dict) -> tuple[Candidate, ...]:
    ctx.check_keys(table, _CHIPS_KEYS, "chips.")
    if "candidates" not in table:
        raise ctx.error(
            "chips.candidates",
            "missing; expected an array of chip "
            "names or tables {name, stock, price_usd, owned, "
            "scaleout_bytes_per_s}",
        )
    items = ctx.typed(table, "candidates", list, "chips.")
    if not items:
        raise ctx.error("chips.candidates", "expected at least one chip")
    out: list[Candidate] = []
    seen: set[tuple[str, bool]] = set()
    for i, item in enumerate(items):
        where = f"chips.candidates[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise ctx.error(where, f"expected a chip name or a table, got {item!r}")
        ctx.check_keys(item, _CANDIDATE_KEYS, f"{where}.")
        if "name" not in item:
            raise ctx.error(f"{where}.name", "missing chip name")
        name = ctx.typed(item, "name", str, f"{where}.")
        chip = _resolve_chip(name, chips, ctx, f"{where}.name")
        owned = ctx.typed(item, "owned", bool, f"{where}.", False)
        stock = ctx.typed(item, "stock", float, f"{where}.")
        if stock is not None and (not 0 <= stock <= _MAX_INT or stock != round(stock)):
            raise ctx.error(
                f"{where}.stock", f"expected a non-negative integer, got {stock!r}"
            )
        if owned and stock is None:
            raise ctx.error(f"{where}.stock", "an owned stockpile needs a stock count")
        price = ctx.typed(item, "price_usd", float, f"{where}.")
        if price is not None and (price < 0 or not math.isfinite(price)):
            raise ctx.error(
                f"{where}.price_usd",
                f"expected a finite non-negative price, got {price!r}",
            )
        if price is None:
            price = 0.0 if owned else float(chip.price_usd)
        if not math.isfinite(price):
            raise ctx.error(
                f"{where}.price_usd",
                f"chip '{chip.key}' has no price in data/chips.csv; give price_usd",
            )
        nic = ctx.typed(item, "scaleout_bytes_per_s", float, f"{where}.")
        if nic is not None:
            if not (nic > 0 and math.isfinite(nic)):
                raise ctx.error(
                    f"{where}.scaleout_bytes_per_s",
                    f"expected a positive bandwidth in bytes/s, got {nic!r}",
                )
            # the cluster's network (e.g. fewer NICs than the reference design); the
            # chip's classification under the regimes does not depend on it
            chip = chip.replace(scaleout_bytes_per_s=nic)
        if (chip.key, owned) in seen:
            raise ctx.error(
                where, f"chip '{chip.key}' listed twice (owned={str(owned).lower()})"
            )
        seen.add((chip.key, owned))
        out.append(
            Candidate(
                chip=chip,
                stock=math.inf if stock is None else stock,
                price_usd=price,
                owned=owned,
            )
        )
    return tuple(out)


def scenario_from_dict(
    data: dict,
    *,
    path: str = "<scenario>",
    name: str | None = None,
    chips: dict | None = None,
) -> Scenario:
    """Validate a parsed scenario table and build a :class:`Scenario`.

    Raises:
      ScenarioError: unknown key, wrong type, unknown chip (with close names),
        negative limit, unknown regime or model; one line naming file and key.
    """
    ctx = _Ctx(path)
    ctx.check_keys(data, _TOP_KEYS, "")
    top = {k: ctx.typed(data, k, t, "") for k, t in _TOP_KEYS.items() if k in data}
    for section in ("model", "training", "chips"):
        if section not in top:
            raise ctx.error(section, f"missing required table [{section}]")
    if chips is None:
        try:
            chips = hardware.load_chips()
        except JaxcostError as exc:
            raise ScenarioError(
                f"cannot load the chip table: {exc}", file=path
            ) from None

    objective = top.get("objective", "time")
    if objective not in _OBJECTIVES:
        raise ctx.error(
            "objective", f"expected one of {list(_OBJECTIVES)}, got {objective!r}"
        )
    regime = top.get("regime", "2025-04")
    _check_regime(regime, ctx)

    training = top["training"]
    ctx.check_keys(training, _TRAINING_KEYS, "training.")
    if "tokens" not in training:
        raise ctx.error("training.tokens", "missing; expected the number of tokens")
    tokens = ctx.typed(training, "tokens", float, "training.")
    if not (tokens > 0 and math.isfinite(tokens)):
        raise ctx.error(
            "training.tokens", f"expected a positive number, got {tokens!r}"
        )
    if tokens > _MAX_TOKENS:
        raise ctx.error(
            "training.tokens",
            f"expected at most {_MAX_TOKENS:g} tokens, got {tokens:g}",
        )

    model = _build_model(top["model"], ctx)
    candidates = _build_candidates(top["chips"], ctx, chips)

    limits = top.get("limits", {})
    ctx.check_keys(limits, _LIMIT_KEYS, "limits.")
    lim = {k: ctx.typed(limits, k, float, "limits.") for k in _LIMIT_KEYS}
    budget = ctx.nonneg(lim["budget_usd"], "limits.budget_usd")
    power = ctx.nonneg(lim["power_w"], "limits.power_w")
    max_chips = ctx.nonneg(lim["max_chips"], "limits.max_chips")
    if math.isfinite(max_chips) and max_chips > _MAX_INT:
        raise ctx.error(
            "limits.max_chips",
            f"expected at most 2^53 chips (or inf: no limit), got {max_chips:g}",
        )
    tpp_cap = ctx.nonneg(lim["tpp_cap"], "limits.tpp_cap")
    max_t = ctx.nonneg(
        lim["max_time_to_train_s"], "limits.max_time_to_train_s", positive=True
    )
    pue = lim["pue"] if lim["pue"] is not None else 1.0
    if not (1.0 <= pue < 10.0):
        raise ctx.error("limits.pue", f"expected a number in [1, 10), got {pue!r}")
    if objective == "cost" and not math.isfinite(max_t):
        raise ctx.error(
            "limits.max_time_to_train_s",
            'objective = "cost" needs a '
            "deadline (otherwise the cheapest cluster is no cluster)",
        )

    search_t = top.get("search", {})
    ctx.check_keys(search_t, _SEARCH_KEYS, "search.")
    s = {
        k: ctx.typed(search_t, k, t, "search.")
        for k, t in _SEARCH_KEYS.items()
        if k in search_t
    }
    for k in ("top", "grid_steps_per_octave", "relaxed_steps", "max_plans"):
        if k in s and s[k] < 1:
            raise ctx.error(f"search.{k}", f"expected an integer >= 1, got {s[k]}")
        if k in s and s[k] > _SEARCH_MAX[k]:
            raise ctx.error(
                f"search.{k}", f"expected an integer <= {_SEARCH_MAX[k]}, got {s[k]}"
            )
    if "pp_layout" in s and s["pp_layout"] not in ("uniform", "auto"):
        raise ctx.error(
            "search.pp_layout", f'expected "uniform" or "auto", got {s["pp_layout"]!r}'
        )
    if "cross_type_efficiency" in s and not 0 < s["cross_type_efficiency"] <= 1:
        raise ctx.error(
            "search.cross_type_efficiency",
            f"expected a number in (0, 1], got {s['cross_type_efficiency']}",
        )

    return Scenario(
        name=top.get("name", name or Path(path).stem),
        path=path,
        description=top.get("description", ""),
        model=model,
        tokens=tokens,
        candidates=candidates,
        regime=regime,
        objective=objective,
        allow_licensed=top.get("allow_licensed", False),
        mixed=top.get("mixed", True),
        budget_usd=budget,
        power_w=power,
        pue=pue,
        max_chips=max_chips,
        tpp_cap=tpp_cap,
        max_time_to_train_s=max_t,
        search=SearchOptions(**s),
    )


def _check_regime(regime: str, ctx: _Ctx) -> None:
    try:
        export_control.load_regime(regime)
    except JaxcostError as exc:
        raise ctx.error("regime", exc.detail) from None


def load_scenario(
    path: str | Path | None = None, *, chips: dict | None = None
) -> Scenario:
    """Read and validate a scenario TOML (default: ``scenarios/default.toml``).

    Raises:
      ScenarioError: unreadable file, TOML syntax error, or any invalid key or value
        (one line naming the file and the key).
    """
    p = Path(path) if path is not None else default_scenario_path()
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ScenarioError(
            f"cannot read scenario: {exc.strerror}", file=str(p)
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"not valid TOML: {exc}", file=str(p)) from None
    except RecursionError:
        raise ScenarioError(
            "arrays or inline tables nested too deeply; expected a scenario table",
            file=str(p),
        ) from None
    return scenario_from_dict(data, path=str(p), name=p.stem, chips=chips)
