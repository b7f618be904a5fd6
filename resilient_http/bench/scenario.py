"""Scenario files: a server profile, a load, the contenders, and an optional tuning grid.

A scenario is a TOML file (the shipped ones are in ``resilient_http/bench/scenarios/``)::

    [scenario]
    name = "flaky"
    description = "20% 503, 2% connection resets, 32 callers"
    order = 30               # position in the default suite
    default = true           # part of `resilient-http bench` with no arguments
    server = "mock"          # "auto": nginx if installed and the profile is plain; "nginx"; "mock"
    contenders = ["bare", "standard", "aiohttp-retry", "tenacity"]   # registry or [stacks]

    [profile]                # what the server does (see Profile)
    error_ratio = 0.2
    reset_ratio = 0.02
    # latency = [0.0005, 0.002]; truncate_ratio, slow_ratio + slow_body; error_status;
    # rate_limit + rate_burst; outage = true, or outage_start + outage_end (below)

    [load]
    requests = 1000          # logical calls per contender per round
    concurrency = 32         # callers in flight; a list runs one variant per value
    rounds = 3
    warmup = 0               # calls before the measured ones, per contender per round
    # rate = 100             # open loop: calls arrive at 100/s whatever the replies do

An outage *window* takes the route down for part of the measured load: ``outage_start`` and
``outage_end`` in ``[profile]`` are **seconds from the start of the measured calls** (not
fractions: a window means the same thing whatever the number of calls). The window needs an
open-loop ``rate`` in ``[load]`` and must end before the last arrival (``requests / rate``
seconds), so every contender meets the same window at the same arrivals and there is an
"after" to see recovery in::

    [profile]
    outage_start = 1.0       # from 1 s after the first measured call ...
    outage_end = 2.0         # ... to 2 s, every reply is error_status; normal before and after
    [load]
    requests = 400
    rate = 100               # 4 s of arrivals: 1 s before, 1 s down, 2 s after

The MockServer plays the window on its own clock, armed by the runner right before the
measured calls (the warm-up runs on the healthy route); it counts the requests that arrive
during the window, so the report gives upstream requests per call *during* the outage from
the server's count, with the success rate before, during and after, and how soon after the
end calls succeed again.


    [settings.standard]      # keyword arguments for a contender's factory
    attempt_timeout = 2.0

    [stacks]                 # contenders of your own: layers by name, with their arguments
    mine = [{type = "Timeout", seconds = 5}, {type = "Retry", attempts = 3}]

    [tune]                   # what `resilient-http tune flaky` varies by default
    base = "mine"
    params = {"Retry.attempts" = [2, 3, 4]}
    objective = ["success", "amplification", "p99"]

Files are read with ``tomllib`` (Python 3.11+) or ``tomli`` (3.10, a dependency there).
Every value is checked on load; an error names the file, the key and the value.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:
        from importlib.abc import Traversable

__all__ = [
    "LayerSpec",
    "Load",
    "Profile",
    "Scenario",
    "ScenarioError",
    "TuneSpec",
    "default_dir",
    "discover",
    "load",
    "parse",
    "resolve",
]

OBJECTIVES = ("success", "amplification", "p99", "p50", "throughput", "429", "cpu")
"""Criteria a tuning objective may list, most important first."""


class ScenarioError(ValueError):
    """A scenario file is missing, unreadable or holds a wrong value."""


@dataclass(frozen=True)
class Profile:
    """What the server does on the benchmarked route.

    Attributes:
        path: the route. Default ``"/bench"``.
        body: the body of a success, as text. Default ``"ok"``.
        latency: seconds before the headers: a number, or ``[low, high]`` for a uniform
            draw. Default 0.
        error_ratio: share of replies answered with ``error_status``. Default 0.
        error_status: the status of those replies. Default 503.
        reset_ratio: share of connections reset before a reply. Default 0.
        truncate_ratio: share of bodies cut short (Content-Length lies). Default 0.
        slow_ratio: share of slow bodies: the headers and the first half of the body at
            once, the second half ``slow_body`` seconds later. Default 0.
        slow_body: seconds a slow body's second half waits. Default 1.
        tail_ratio: share of replies delayed by ``tail_latency`` instead of ``latency`` (a
            latency tail). Default 0.
        tail_latency: seconds before the headers of those replies: a number or ``[low,
            high]``. Default ``[0.5, 1.0]``.
        rate_limit: requests per second the server admits on the route (429 with
            Retry-After, RateLimit and X-RateLimit-* headers beyond it); ``None`` for no limit.
        rate_burst: bucket size of that limit; default ``rate_limit``.
        outage: every reply is ``error_status``. Default ``False``.
        outage_start: with ``outage_end``, an outage window: seconds from the start of the
            measured calls when every reply becomes ``error_status`` (see the module
            docstring; needs an open-loop ``rate``). Default ``None``: no window.
        outage_end: seconds from the start of the measured calls when the route is back.
            Default ``None``.
        cache_control: when set, the route is cacheable: an ETag and this Cache-Control
            header (e.g. ``"max-age=60"``).
        seed: random seed of the fault draws. Default 1234.
    """

    path: str = "/bench"
    body: str = "ok"
    latency: float | tuple[float, float] = 0.0
    error_ratio: float = 0.0
    error_status: int = 503
    reset_ratio: float = 0.0
    truncate_ratio: float = 0.0
    slow_ratio: float = 0.0
    slow_body: float = 1.0
    tail_ratio: float = 0.0
    tail_latency: float | tuple[float, float] = (0.5, 1.0)
    rate_limit: float | None = None
    rate_burst: int | None = None
    outage: bool = False
    outage_start: float | None = None
    outage_end: float | None = None
    cache_control: str | None = None
    seed: int = 1234

    @property
    def window(self) -> tuple[float, float] | None:
        """``(outage_start, outage_end)`` in seconds, or ``None`` without a window."""
        if self.outage_start is None or self.outage_end is None:
            return None
        return (self.outage_start, self.outage_end)

    @property
    def plain(self) -> bool:
        """Whether the route is a fixed fast 200 (with its Cache-Control header when
        cacheable), so a static server like nginx can play it."""
        return (
            self.latency in (0, 0.0)
            and not self.error_ratio
            and not self.reset_ratio
            and not self.truncate_ratio
            and not self.slow_ratio
            and not self.tail_ratio
            and self.rate_limit is None
            and not self.outage
            and self.window is None
        )


@dataclass(frozen=True)
class Load:
    """How hard the contenders are driven.

    Attributes:
        requests: logical calls per contender per round. Default 1000.
        concurrency: callers in flight; one variant of the scenario per value. Default (1,).
        rounds: rounds of the interleaved contenders (A B C A B C ...). Default 3.
        warmup: unmeasured calls before each measured run. Default 50.
        rate: an arrival rate in calls per second, or ``None`` (the default) to call as fast
            as the callers can (closed loop). With a rate the load is *open loop*: call ``k``
            is due ``k / rate`` seconds after the start whatever the earlier calls do, and
            starts then if one of the ``concurrency`` callers is free. Nothing is dropped: a
            call that finds every caller busy waits for one and is counted *late* (with its
            lag), and the report says which rate was achieved. Latencies are from a call's
            actual start; its wait for a caller shows as lag, not latency.
    """

    requests: int = 1000
    concurrency: tuple[int, ...] = (1,)
    rounds: int = 3
    warmup: int = 50
    rate: float | None = None


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a stack written as data: ``{type = "Retry", attempts = 3}``.

    ``type`` names a public class of ``resilient_http`` (a layer, or a helper such as
    ``Backoff`` when used as a value); the other keys are its keyword arguments. A value that
    is itself a table with a ``type`` is built the same way.
    """

    type: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TuneSpec:
    """The default grid of ``resilient-http tune``.

    Attributes:
        base: the contender whose settings vary (a name of the registry or of ``[stacks]``).
        params: parameter name → values. For a stack, a name is ``Layer.argument``, or
            ``Layer#2.argument`` for the second layer of that type; for a registry contender,
            a keyword of its factory (e.g. ``attempt_timeout`` for ``standard``).
        objective: criteria, most important first (see :data:`OBJECTIVES`). Default success,
            then upstream amplification, then p99.
    """

    base: str
    params: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    objective: tuple[str, ...] = ("success", "amplification", "p99")


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario file (see the module docstring)."""

    name: str
    description: str = ""
    order: int = 100
    default: bool = True
    server: str = "auto"
    profile: Profile = field(default_factory=Profile)
    load: Load = field(default_factory=Load)
    contenders: tuple[str, ...] = ("bare",)
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    stacks: Mapping[str, tuple[LayerSpec, ...]] = field(default_factory=dict)
    tune: TuneSpec | None = None
    source: str = "<inline>"

    def __post_init__(self) -> None:
        # Here rather than in parse(), so a load changed later (--requests) is checked too.
        _check_window(self.source, self.profile, self.load)


def _read_toml(path: Path | Traversable) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        try:
            # tomli ships types, but is only installed on 3.10 (a dependency there).
            import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise ScenarioError(
                "reading scenario files on Python 3.10 needs tomli: pip install tomli"
            ) from exc
    try:
        with path.open("rb") as f:
            data: dict[str, Any] = tomllib.load(f)
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc
    return data


class _Reader:
    """Typed access to one table, with errors naming the file and the key."""

    def __init__(self, source: str, prefix: str, table: Any) -> None:
        if not isinstance(table, dict):
            raise ScenarioError(f"{source}: [{prefix}] must be a table, got {table!r}")
        self.source = source
        self.prefix = prefix
        self.table: dict[str, Any] = dict(table)

    def _fail(self, key: str, value: Any, allowed: str) -> ScenarioError:
        where = f"{self.prefix}.{key}" if self.prefix else key
        return ScenarioError(f"{self.source}: {where} must be {allowed}, got {value!r}")

    def number(self, key: str, default: float, *, low: float = 0.0, high: float = math.inf,
               ) -> float:
        value = self.table.pop(key, default)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not (low <= value <= high):
            raise self._fail(key, value, f"a number between {low:g} and {high:g}")
        return float(value)

    def optional_number(self, key: str, *, low: float = 0.0, inclusive: bool = False,
                        ) -> float | None:
        if self.table.get(key) is None:
            self.table.pop(key, None)
            return None
        value = self.number(key, 0.0, low=low)
        if value <= low and not inclusive:
            raise self._fail(key, value, f"a number > {low:g}")
        return value

    def integer(self, key: str, default: int, *, low: int = 0) -> int:
        value = self.table.pop(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise self._fail(key, value, f"an integer >= {low}")
        return value

    def optional_integer(self, key: str, *, low: int = 1) -> int | None:
        if self.table.get(key) is None:
            self.table.pop(key, None)
            return None
        return self.integer(key, low, low=low)

    def string(self, key: str, default: str, choices: tuple[str, ...] | None = None) -> str:
        value = self.table.pop(key, default)
        if not isinstance(value, str) or (choices is not None and value not in choices):
            allowed = "one of " + ", ".join(map(repr, choices)) if choices else "a string"
            raise self._fail(key, value, allowed)
        return value

    def optional_string(self, key: str) -> str | None:
        if self.table.get(key) is None:
            self.table.pop(key, None)
            return None
        return self.string(key, "")

    def boolean(self, key: str, default: bool) -> bool:
        value = self.table.pop(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, value, "true or false")
        return value

    def done(self) -> None:
        if self.table:
            where = f"[{self.prefix}]" if self.prefix else "the top level"
            raise ScenarioError(
                f"{self.source}: unknown key(s) in {where}: {', '.join(sorted(self.table))}"
            )


def _latency(r: _Reader, key: str, default: Any) -> float | tuple[float, float]:
    raw = r.table.pop(key, default)
    if isinstance(raw, list) and len(raw) == 2 and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in raw
    ) and raw[0] <= raw[1]:
        return (float(raw[0]), float(raw[1]))
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw >= 0:
        return float(raw)
    raise r._fail(key, raw, "seconds >= 0 or [low, high]")


def _profile(source: str, table: Any) -> Profile:
    r = _Reader(source, "profile", table)
    latency = _latency(r, "latency", 0.0)
    tail_latency = _latency(r, "tail_latency", [0.5, 1.0])
    path = r.string("path", "/bench")
    if not path.startswith("/") or path.startswith("/__"):
        raise r._fail("path", path, "a path starting with '/' (not '/__', which is reserved)")
    profile = Profile(
        path=path,
        body=r.string("body", "ok"),
        latency=latency,
        error_ratio=r.number("error_ratio", 0.0, high=1.0),
        error_status=r.integer("error_status", 503, low=100),
        reset_ratio=r.number("reset_ratio", 0.0, high=1.0),
        truncate_ratio=r.number("truncate_ratio", 0.0, high=1.0),
        slow_ratio=r.number("slow_ratio", 0.0, high=1.0),
        slow_body=r.number("slow_body", 1.0),
        tail_ratio=r.number("tail_ratio", 0.0, high=1.0),
        tail_latency=tail_latency,
        rate_limit=r.optional_number("rate_limit"),
        rate_burst=r.optional_integer("rate_burst"),
        outage=r.boolean("outage", False),
        outage_start=r.optional_number("outage_start", inclusive=True),
        outage_end=r.optional_number("outage_end", inclusive=True),
        cache_control=r.optional_string("cache_control"),
        seed=r.integer("seed", 1234),
    )
    r.done()
    ratios = profile.error_ratio + profile.reset_ratio + profile.truncate_ratio
    if ratios + profile.slow_ratio > 1.0:
        raise ScenarioError(
            f"{source}: profile error, reset, truncate and slow ratios add up past 1"
        )
    if profile.slow_ratio and len(profile.body.encode()) < 2:
        raise ScenarioError(f"{source}: profile.slow_ratio needs a body of 2 bytes or more")
    start, end = profile.outage_start, profile.outage_end
    if (start is None) != (end is None):
        raise ScenarioError(f"{source}: profile.outage_start and profile.outage_end go together")
    if start is not None and end is not None:
        if end <= start:
            raise ScenarioError(
                f"{source}: profile.outage_end ({end:g}) must be after outage_start ({start:g})"
            )
        if profile.outage:
            raise ScenarioError(f"{source}: profile.outage = true already takes the route "
                                "down for the whole run; drop it or the window")
    return profile


def _check_window(source: str, profile: Profile, load: Load) -> None:
    window = profile.window
    if window is None:
        return
    if load.rate is None:
        raise ScenarioError(f"{source}: an outage window needs an open-loop load.rate, so "
                            "every contender meets it at the same arrivals")
    arrivals = load.requests / load.rate
    if window[1] >= arrivals:
        raise ScenarioError(
            f"{source}: profile.outage_end ({window[1]:g} s) must come before the last "
            f"arrival ({load.requests} calls at {load.rate:g}/s = {arrivals:g} s)"
        )


def _load(source: str, table: Any) -> Load:
    r = _Reader(source, "load", table)
    raw = r.table.pop("concurrency", 1)
    values = raw if isinstance(raw, list) else [raw]
    if not values or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values
    ):
        raise r._fail("concurrency", raw, "an integer >= 1 or a list of them")
    load = Load(
        requests=r.integer("requests", 1000, low=1),
        concurrency=tuple(values),
        rounds=r.integer("rounds", 3, low=1),
        warmup=r.integer("warmup", 50),
        rate=r.optional_number("rate"),
    )
    r.done()
    return load


def _spec(source: str, where: str, raw: Any) -> LayerSpec:
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise ScenarioError(f"{source}: {where} must be a table with a 'type', got {raw!r}")
    kwargs = {k: v for k, v in raw.items() if k != "type"}
    return LayerSpec(raw["type"], kwargs)


def _tune(source: str, table: Any) -> TuneSpec:
    r = _Reader(source, "tune", table)
    base = r.string("base", "")
    if not base:
        raise r._fail("base", base, "the name of a contender")
    raw_params = r.table.pop("params", {})
    if not isinstance(raw_params, dict):
        raise r._fail("params", raw_params, "a table of name = [values]")
    params: dict[str, tuple[Any, ...]] = {}
    for name, values in raw_params.items():
        if not isinstance(values, list) or not values:
            raise r._fail(f"params.{name}", values, "a non-empty list of values")
        params[name] = tuple(values)
    objective = r.table.pop("objective", ["success", "amplification", "p99"])
    if not isinstance(objective, list) or not objective or not all(
        o in OBJECTIVES for o in objective
    ):
        raise r._fail("objective", objective, "a list of " + ", ".join(OBJECTIVES))
    r.done()
    return TuneSpec(base, params, tuple(objective))


def parse(data: Mapping[str, Any], source: str = "<inline>") -> Scenario:
    """Build a :class:`Scenario` from the parsed TOML of a file (``source`` names it in
    errors)."""
    top = _Reader(source, "", data)
    head = _Reader(source, "scenario", top.table.pop("scenario", {}))
    name = head.string("name", Path(source).stem if source != "<inline>" else "")
    if not name:
        raise ScenarioError(f"{source}: scenario.name is missing")
    description = head.string("description", "")
    order = head.integer("order", 100)
    default = head.boolean("default", True)
    server = head.string("server", "auto", ("auto", "nginx", "mock"))
    contenders = head.table.pop("contenders", ["bare"])
    head.done()
    profile = _profile(source, top.table.pop("profile", {}))
    load = _load(source, top.table.pop("load", {}))

    raw_stacks = top.table.pop("stacks", {})
    if not isinstance(raw_stacks, dict):
        raise ScenarioError(f"{source}: [stacks] must be a table of name = [layers]")
    stacks: dict[str, tuple[LayerSpec, ...]] = {}
    for sname, layers in raw_stacks.items():
        if not isinstance(layers, list) or not layers:
            raise ScenarioError(f"{source}: stacks.{sname} must be a non-empty list of layers")
        stacks[sname] = tuple(_spec(source, f"stacks.{sname}[{k}]", x) for k, x in
                              enumerate(layers))

    if not isinstance(contenders, list) or not contenders or not all(
        isinstance(c, str) for c in contenders
    ):
        raise ScenarioError(
            f"{source}: scenario.contenders must be a list of names, got {contenders!r}"
        )
    if len(set(contenders)) != len(contenders):
        raise ScenarioError(f"{source}: contenders lists a name twice: {contenders!r}")

    raw_settings = top.table.pop("settings", {})
    if not isinstance(raw_settings, dict) or not all(
        isinstance(v, dict) for v in raw_settings.values()
    ):
        raise ScenarioError(f"{source}: [settings] must hold one table per contender")
    tune = _tune(source, top.table.pop("tune")) if "tune" in top.table else None
    top.done()
    return Scenario(
        name=name,
        description=description,
        order=order,
        default=default,
        server=server,
        profile=profile,
        load=load,
        contenders=tuple(contenders),
        settings={k: dict(v) for k, v in raw_settings.items()},
        stacks=stacks,
        tune=tune,
        source=source,
    )


def load(path: str | Path | Traversable) -> Scenario:
    """Read and check one scenario file (a path, or a packaged resource)."""
    p = Path(path) if isinstance(path, str) else path
    return parse(_read_toml(p), str(p))


def default_dir() -> Traversable:
    """The scenarios shipped inside the package (``resilient_http/bench/scenarios``), read
    through :mod:`importlib.resources`, so an installed wheel has them too."""
    return resources.files("resilient_http.bench") / "scenarios"


def discover(directory: Path | Traversable) -> list[Scenario]:
    """Every scenario file in ``directory``, in suite order (``order``, then name)."""
    if not directory.is_dir():
        raise ScenarioError(f"no scenario directory at {directory}")
    files = sorted((p for p in directory.iterdir() if p.name.endswith(".toml")),
                   key=lambda p: p.name)
    found = [load(p) for p in files]
    return sorted(found, key=lambda s: (s.order, s.name))


def resolve(names: list[str], directory: Path | Traversable) -> list[Scenario]:
    """Scenarios by name or path; no names → the default suite of ``directory``."""
    if not names:
        return [s for s in discover(directory) if s.default]
    out: list[Scenario] = []
    known: dict[str, Scenario] | None = None
    for name in names:
        if name.endswith(".toml") or "/" in name:
            out.append(load(name))
            continue
        if known is None:
            known = {s.name: s for s in discover(directory)}
        if name not in known:
            raise ScenarioError(
                f"no scenario named {name!r} in {directory}; known: {', '.join(sorted(known))}"
            )
        out.append(known[name])
    return out
