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
    precisions = ["bf16"]              # GEMM formats tried; ["bf16", "fp8"]: FP8 where
                                       # the chip has an FP8 peak (a plan dimension)

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxcost.errors import JaxcostError, ScenarioError
from jaxcost.io.paths import default_scenario_path
from jaxcost.io.schema import Column, Problem, raise_problems, validate_keys
from jaxcost.model import hardware, workload
from jaxcost.model.hardware import Precision
from jaxcost.policy import export_control
from jaxcost.search.space import PlanSpace

__all__ = [
    "TOP_KEYS",
    "TRAINING_KEYS",
    "CHIPS_KEYS",
    "CANDIDATE_KEYS",
    "LIMIT_KEYS",
    "SEARCH_KEYS",
    "MODEL_KEYS",
    "Candidate",
    "Scenario",
    "SearchOptions",
    "load_scenario",
    "scenario_from_dict",
]



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
    precisions: tuple[str, ...] = ("bf16",)

    def plan_space(self) -> PlanSpace:
        """The :class:`jaxcost.search.space.PlanSpace` of the searched plans."""
        return PlanSpace(
            pp_balance="auto" if self.pp_layout == "auto" else False,
            tp_overlap=self.tp_overlap,
            dp_overlap=self.dp_overlap,
            precisions=tuple(Precision(p) for p in self.precisions),
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


# --------------------------------------------------------------------------- schema

#: Largest integer a scenario may give (exact in float64); counts above it are refused.
_MAX_INT = 2**53

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


def _as(want: type, v: Any) -> Any:
    """``v`` as a TOML value of type ``want`` (an int is a number; a whole float is
    an integer up to 2^53).

    Raises:
      ScenarioError: what was expected and what was given.
    """
    if want is float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ScenarioError(f"expected {_TYPE_WORDS[want]}, got {v!r}")
        v = float(v)
        if math.isnan(v):
            raise ScenarioError("expected a number, got nan")
        return v
    if want is int:
        if (
            isinstance(v, bool)
            or not isinstance(v, int | float)
            or not math.isfinite(v)
            or v != round(v)
        ):
            raise ScenarioError(f"expected {_TYPE_WORDS[want]}, got {v!r}")
        if abs(v) > _MAX_INT:
            raise ScenarioError(
                f"expected an integer of magnitude <= 2^53, got {v:.6g}"
            )
        return int(v)
    if not isinstance(v, want):
        raise ScenarioError(f"expected {_TYPE_WORDS[want]}, got {v!r}")
    return v


def _typed(want: type) -> Callable[[Any], Any]:
    """A parser of TOML values of type ``want``."""
    return lambda v: _as(want, v)


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        v = _as(str, v)
        if v not in allowed:
            words = " or ".join(f'"{a}"' for a in allowed)
            raise ScenarioError(f"expected {words}, got {v!r}")
        return v

    return parse


def _precisions(v: Any) -> tuple[str, ...]:
    """A non-empty array of distinct GEMM formats, each "bf16" or "fp8"."""
    items = _as(list, v)
    allowed = tuple(p.value for p in Precision)
    out = []
    for x in items:
        x = _as(str, x)
        if x not in allowed:
            words = " or ".join(f'"{a}"' for a in allowed)
            raise ScenarioError(f"expected an array of {words}, got {x!r}")
        if x in out:
            raise ScenarioError(f"expected distinct formats, got {x!r} twice")
        out.append(x)
    if not out:
        raise ScenarioError('expected a non-empty array such as ["bf16", "fp8"]')
    return tuple(out)


def _limit(*, positive: bool = False, most: float | None = None):
    """A limit: a number >= 0 (``positive``: > 0), ``inf`` = no limit."""

    def parse(v: Any) -> float:
        v = _as(float, v)
        if positive and not v > 0:
            raise ScenarioError(f"expected a positive number, got {v!r}")
        if v < 0:
            raise ScenarioError(f"expected a non-negative number, got {v!r}")
        if most is not None and math.isfinite(v) and v > most:
            raise ScenarioError(
                f"expected at most 2^53 chips (or inf: no limit), got {v:g}"
            )
        return v

    return parse


def _pue(v: Any) -> float:
    v = _as(float, v)
    if not 1.0 <= v < 10.0:
        raise ScenarioError(f"expected a number in [1, 10), got {v!r}")
    return v


def _tokens(v: Any) -> float:
    v = _as(float, v)
    if not (v > 0 and math.isfinite(v)):
        raise ScenarioError(f"expected a positive number, got {v!r}")
    if v > _MAX_TOKENS:
        raise ScenarioError(f"expected at most {_MAX_TOKENS:g} tokens, got {v:g}")
    return v


def _count(most: int) -> Callable[[Any], int]:
    def parse(v: Any) -> int:
        v = _as(int, v)
        if v < 1:
            raise ScenarioError(f"expected an integer >= 1, got {v}")
        if v > most:
            raise ScenarioError(f"expected an integer <= {most}, got {v}")
        return v

    return parse


def _efficiency(v: Any) -> float:
    v = _as(float, v)
    if not 0 < v <= 1:
        raise ScenarioError(f"expected a number in (0, 1], got {v}")
    return v


def _stock(v: Any) -> float:
    v = _as(float, v)
    if not 0 <= v <= _MAX_INT or v != round(v):
        raise ScenarioError(f"expected a non-negative integer, got {v!r}")
    return v


def _price(v: Any) -> float:
    v = _as(float, v)
    if v < 0 or not math.isfinite(v):
        raise ScenarioError(f"expected a finite non-negative price, got {v!r}")
    return v


def _bandwidth(v: Any) -> float:
    v = _as(float, v)
    if not (v > 0 and math.isfinite(v)):
        raise ScenarioError(f"expected a positive bandwidth in bytes/s, got {v!r}")
    return v


def _key(name: str, parse, doc: str, **kw) -> Column:
    return Column(name, parse, doc=doc, **kw)


#: The top level of a scenario file.
TOP_KEYS: tuple[Column, ...] = (
    _key("name", _typed(str), "scenario name (default: the file stem)"),
    _key("description", _typed(str), "free text", default=""),
    _key(
        "regime",
        _typed(str),
        "export-control regime id of data/regimes",
        default="2025-04",
    ),
    _key(
        "objective",
        _choice("time", "cost"),
        '"time" (time-to-train) or "cost" (capex)',
        default="time",
    ),
    _key("allow_licensed", _typed(bool), "allow licensed chips", default=False),
    _key("mixed", _typed(bool), "allow clusters of several chip types", default=True),
    _key("model", _typed(dict), "the table [model]", required=True),
    _key("training", _typed(dict), "the table [training]", required=True),
    _key("chips", _typed(dict), "the table [chips]", required=True),
    _key("limits", _typed(dict), "the table [limits]", default={}),
    _key("search", _typed(dict), "the table [search]", default={}),
)
#: ``[training]``.
TRAINING_KEYS: tuple[Column, ...] = (
    _key("tokens", _tokens, "the number of tokens to train on", required=True),
)
#: ``[chips]``.
CHIPS_KEYS: tuple[Column, ...] = (
    _key(
        "candidates",
        _typed(list),
        "an array of chip names or tables {name, stock, price_usd, owned, "
        "scaleout_bytes_per_s}",
        required=True,
    ),
)
#: One entry of ``[chips] candidates`` (a bare string is its ``name``).
CANDIDATE_KEYS: tuple[Column, ...] = (
    _key("name", _typed(str), "the chip's key or full name", required=True),
    _key("stock", _stock, "chips available (default: unlimited)"),
    _key("price_usd", _price, "unit price, USD (default: data/chips.csv)"),
    _key("owned", _typed(bool), "already held (needs stock)", default=False),
    _key(
        "scaleout_bytes_per_s",
        _bandwidth,
        "the cluster's NIC bytes/s per chip and direction",
    ),
)
#: ``[limits]`` (``inf`` when absent).
LIMIT_KEYS: tuple[Column, ...] = (
    _key("budget_usd", _limit(), "capex, USD", default=math.inf),
    _key("power_w", _limit(), "IT power x PUE, W", default=math.inf),
    _key("pue", _pue, "power usage effectiveness in [1, 10)", default=1.0),
    _key("max_chips", _limit(most=_MAX_INT), "chips", default=math.inf),
    _key("tpp_cap", _limit(), "aggregate TPP of bought chips", default=math.inf),
    _key(
        "max_time_to_train_s",
        _limit(positive=True),
        "deadline, s (required with objective = cost)",
        default=math.inf,
    ),
)
#: ``[search]`` (optimiser knobs; the defaults of :class:`SearchOptions`).
SEARCH_KEYS: tuple[Column, ...] = (
    _key("top", _count(10**6), "clusters to report"),
    _key("cross_type_efficiency", _efficiency, "throughput kept, (0, 1]"),
    _key("grid_steps_per_octave", _count(64), "count grid density"),
    _key("relaxed_steps", _count(10**6), "Adam steps of the relaxed problem"),
    _key("max_plans", _count(10**9), "plan-enumeration cap per chip type"),
    _key("pp_layout", _choice("uniform", "auto"), "pipeline splits"),
    _key("tp_overlap", _typed(bool), "plans pipeline TP communication"),
    _key("dp_overlap", _typed(bool), "plans overlap the gradient reduction"),
    _key("precisions", _precisions, "GEMM formats tried (FP8 where the chip has it)"),
)
_MODEL_DIMS = (
    "num_layers",
    "d_model",
    "num_heads",
    "seq_len",
    "global_batch_seqs",
    "vocab_size",
    "d_ff",
    "num_kv_heads",
    "head_dim",
    "num_experts",
    "top_k",
    "moe_d_ff",
    "num_dense_layers",
    "num_shared_experts",
)
#: ``[model]``: a row of data/models.csv by name, or explicit dimensions.
MODEL_KEYS: tuple[Column, ...] = (
    _key("name", _typed(str), "a model of data/models.csv"),
    _key("label", _typed(str), "display name of explicit dimensions"),
    _key("mlp", _typed(str), "gelu or swiglu (explicit dimensions)"),
    _key("tied_embeddings", _typed(bool), "shared embedding (explicit dimensions)"),
    *(_key(k, _typed(int), "a dimension of TransformerConfig") for k in _MODEL_DIMS),
)
#: keys that may override a named model's row
_MODEL_OVERRIDES = ("seq_len", "global_batch_seqs")
_MODEL_REQUIRED = (
    "num_layers",
    "d_model",
    "num_heads",
    "seq_len",
    "global_batch_seqs",
    "vocab_size",
)


class _Problems:
    """The problems of one scenario file, collected in order."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[Problem] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(
            Problem(self.path, f"key '{key}'", None, message, error_type=ScenarioError)
        )

    def table(self, table: Any, columns, prefix: str) -> dict[str, Any] | None:
        """The values of ``table`` (None if it is not a table), validated against
        ``columns``: defaults where absent, None where a value is bad (reported)."""
        if not isinstance(table, dict):
            return None
        values, probs = validate_keys(
            table, columns, file=self.path, prefix=prefix, error_type=ScenarioError
        )
        self.items.extend(probs)
        return values


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


def _resolve_chip(name: str, chips: dict):
    """The chip of ``chips`` named ``name`` (key or full name, any case), or None."""
    if name in chips:
        return chips[name]
    low = name.strip().lower()
    by_key = {k.lower(): c for k, c in chips.items()}
    by_name = {c.name.lower(): c for c in chips.values()}
    return by_key.get(low) or by_name.get(low)


def _build_model(table: dict, found: _Problems):
    given = {k for k in table}
    vals = found.table(table, MODEL_KEYS, "model.")
    if vals is None or any(p.row.startswith("key 'model.") for p in found.items):
        return None
    vals = {k: v for k, v in vals.items() if k in given}
    dims = {k: v for k, v in vals.items() if k in _MODEL_DIMS}
    name = vals.get("name")
    if name is not None:
        for k in _MODEL_OVERRIDES:
            if k in dims and dims[k] < 1:
                found.add(f"model.{k}", f"expected an integer >= 1, got {dims[k]}")
                return None
        bad = sorted(
            (set(dims) - set(_MODEL_OVERRIDES))
            | ({"mlp", "tied_embeddings"} & set(vals))
        )
        if bad:
            found.add(
                f"model.{bad[0]}",
                f"with model.name only {list(_MODEL_OVERRIDES)} may be "
                "overridden; give either a name or explicit dimensions",
            )
            return None
        try:
            w = workload.get_model(name)
        except JaxcostError as exc:
            if exc.problems:  # the model table itself is bad: name its file and row
                raise
            found.add("model.name", exc.detail)
            return None
        if dims:
            w = w.replace(**{k: float(v) for k, v in dims.items()})
        return w
    for r in _MODEL_REQUIRED:
        if r not in dims:
            found.add(
                f"model.{r}",
                f"missing; give model.name or the dimensions {list(_MODEL_REQUIRED)}",
            )
            return None
    try:
        return workload.TransformerConfig.create(
            name=str(vals.get("label", "custom")),
            mlp=vals.get("mlp", "gelu"),
            tied_embeddings=vals.get("tied_embeddings", False),
            **dims,
        )
    except JaxcostError as exc:
        found.add(f"model.{exc.column or 'name'}", exc.detail)
        return None


def _build_candidates(
    items: list, found: _Problems, chips: dict
) -> tuple[Candidate, ...]:
    if not items:
        found.add("chips.candidates", "expected at least one chip")
        return ()
    out: list[Candidate] = []
    seen: set[tuple[str, bool]] = set()
    for i, item in enumerate(items):
        where = f"chips.candidates[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            found.add(where, f"expected a chip name or a table, got {item!r}")
            continue
        v = found.table(item, CANDIDATE_KEYS, f"{where}.")
        if v is None or v.get("name") is None:
            continue
        chip = _resolve_chip(v["name"], chips)
        if chip is None:
            found.add(
                f"{where}.name",
                f"unknown chip '{v['name']}'{_suggest(v['name'], chips)}",
            )
            continue
        owned, stock, price = v.get("owned", False), v.get("stock"), v.get("price_usd")
        if owned and stock is None and "stock" not in item:
            found.add(f"{where}.stock", "an owned stockpile needs a stock count")
            continue
        if price is None and "price_usd" not in item:
            price = 0.0 if owned else float(chip.price_usd)
            if not math.isfinite(price):
                found.add(
                    f"{where}.price_usd",
                    f"chip '{chip.key}' has no price in data/chips.csv; give "
                    "price_usd",
                )
                continue
        nic = v.get("scaleout_bytes_per_s")
        if nic is not None:
            # the cluster's network (e.g. fewer NICs than the reference design); the
            # chip's classification under the regimes does not depend on it
            chip = chip.replace(scaleout_bytes_per_s=nic)
        if (chip.key, owned) in seen:
            found.add(
                where, f"chip '{chip.key}' listed twice (owned={str(owned).lower()})"
            )
            continue
        seen.add((chip.key, owned))
        if price is None or (stock is None and "stock" in item):
            continue  # a bad value, already reported
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

    Every table is checked against its schema (:data:`TOP_KEYS`,
    :data:`TRAINING_KEYS`, :data:`CHIPS_KEYS`, :data:`CANDIDATE_KEYS`,
    :data:`LIMIT_KEYS`, :data:`SEARCH_KEYS`, :data:`MODEL_KEYS`) by
    :func:`jaxcost.io.schema.validate_keys`, then the model, chips and regime are
    resolved; every problem is collected and the first one raised.

    Raises:
      ScenarioError: unknown key, wrong type, unknown chip (with close names),
        negative limit, unknown regime or model; one line naming file and key
        (``err.problems`` lists every problem of the file).
    """
    found = _Problems(path)
    top = found.table(data, TOP_KEYS, "")
    if top is None:
        raise ScenarioError("expected a table of scenario keys", file=path)
    if chips is None:
        try:
            chips = hardware.load_chips()
        except JaxcostError as exc:
            raise ScenarioError(
                f"cannot load the chip table: {exc}", file=path
            ) from None
    regime = top.get("regime")
    if regime is not None:
        try:
            export_control.load_regime(regime)
        except JaxcostError as exc:
            found.add("regime", exc.detail)
    training = found.table(top.get("training"), TRAINING_KEYS, "training.")
    model = None
    if isinstance(top.get("model"), dict):
        model = _build_model(top["model"], found)
    candidates: tuple[Candidate, ...] = ()
    chip_table = found.table(top.get("chips"), CHIPS_KEYS, "chips.")
    if chip_table and chip_table.get("candidates") is not None:
        candidates = _build_candidates(chip_table["candidates"], found, chips)
    lim = found.table(top.get("limits") or {}, LIMIT_KEYS, "limits.") or {}
    objective = top.get("objective")
    if objective == "cost" and not math.isfinite(
        lim.get("max_time_to_train_s", math.inf)
    ):
        found.add(
            "limits.max_time_to_train_s",
            'objective = "cost" needs a '
            "deadline (otherwise the cheapest cluster is no cluster)",
        )
    search = found.table(top.get("search") or {}, SEARCH_KEYS, "search.") or {}
    raise_problems(found.items)
    given = {k: v for k, v in search.items() if v is not None}
    return Scenario(
        name=top.get("name") or name or Path(path).stem,
        path=path,
        description=top["description"],
        model=model,
        tokens=training["tokens"],
        candidates=candidates,
        regime=regime,
        objective=objective,
        allow_licensed=top["allow_licensed"],
        mixed=top["mixed"],
        budget_usd=lim["budget_usd"],
        power_w=lim["power_w"],
        pue=lim["pue"],
        max_chips=lim["max_chips"],
        tpp_cap=lim["tpp_cap"],
        max_time_to_train_s=lim["max_time_to_train_s"],
        search=SearchOptions(**given),
    )


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
