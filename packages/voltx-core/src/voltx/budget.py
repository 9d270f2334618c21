"""Spend and time limits of a run: what has been spent, what is projected, when to stop.

A running job costs its price per hour (`JobHandle.price_per_hour`: a Vast instance's
``dph_total``, an SSH host's configured rate, nothing locally) for as long as it runs. Jobs that
share one machine (`JobHandle.billing_key`) pay for it once, at the highest of their prices, split
evenly between them. The `BudgetMeter` adds this up on every tick of the scheduler, on a clock the
tests can speed up, and says when to warn (the projection crossed the budget) and when to stop
(the spend reached the budget, or the run or a phase ran its `max_hours`).

Limits come from ``voltx run --budget DOLLARS --max-hours HOURS`` (or `voltx.run(budget=...,
max_hours=...)`) and from the project file::

    [budget]
    dollars = 40.0          # the whole run, counting what it spent before a re-run
    max_hours = 12          # wall time of one `voltx run`
    grace_s = 60            # how long a stopped job has to checkpoint before it is killed

    [budget.phases."2.1"]
    dollars = 5.0
    max_hours = 2
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from voltx.config import collect, expecting
from voltx.errors import ConfigError
from voltx.ledger import Ledger, since_last_start
from voltx.store import ArtifactStore

# A stopped job gets this long after SIGTERM to write its checkpoint before it is killed.
DEFAULT_GRACE_S = 30.0
# The spend so far goes into the run ledger at most this often (and when a phase ends).
DEFAULT_RECORD_EVERY_S = 30.0
# `voltx run` exits with this when a budget or time limit stopped the run.
BUDGET_EXIT_CODE = 3

Clock = Callable[[], float]


def _above_zero(_instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be above 0, got {value!r}")


def _not_negative(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


_A_LIMIT = expecting("a number above 0")


@attrs.frozen
class Limits:
    """Dollars and hours that a run (or one phase) may use; None is no limit."""

    dollars: float | None = attrs.field(default=None, validator=_above_zero, metadata=_A_LIMIT)
    max_hours: float | None = attrs.field(default=None, validator=_above_zero, metadata=_A_LIMIT)

    @property
    def any(self) -> bool:
        return self.dollars is not None or self.max_hours is not None


@attrs.frozen
class BudgetConfig:
    """Every limit of one run: the run's own and each phase's."""

    run: Limits = Limits()
    phases: Mapping[str, Limits] = attrs.field(factory=dict)
    grace_s: float = DEFAULT_GRACE_S

    @property
    def any(self) -> bool:
        return self.run.any or any(limits.any for limits in self.phases.values())

    def with_run_limits(self, dollars: float | None, max_hours: float | None) -> BudgetConfig:
        """These limits for the whole run in place of the project's (where given)."""
        run = Limits(
            dollars if dollars is not None else self.run.dollars,
            max_hours if max_hours is not None else self.run.max_hours,
        )
        return attrs.evolve(self, run=run)


@attrs.frozen(kw_only=True)
class BudgetTable(Limits):
    """The ``[budget]`` table as written: the run's limits, `grace_s`, and per-phase tables."""

    grace_s: float = attrs.field(
        default=DEFAULT_GRACE_S,
        validator=_not_negative,
        metadata=expecting("seconds (a number >= 0)"),
    )
    phases: Mapping[str, Limits] = attrs.field(factory=dict)

    def config(self) -> BudgetConfig:
        return BudgetConfig(
            run=Limits(self.dollars, self.max_hours), phases=self.phases, grace_s=self.grace_s
        )


def parse_budget_table(table: Any, problems: list[str]) -> BudgetConfig:
    """The ``[budget]`` table of a project file; each problem is appended to `problems`."""
    parsed = collect(BudgetTable, table, "budget", problems)
    return parsed.config() if isinstance(parsed, BudgetTable) else BudgetConfig()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_limit(name: str, value: float | None) -> None:
    """A limit given to `voltx.run` or the CLI must be a positive number."""
    if value is not None and (not _is_number(value) or value <= 0):
        raise ConfigError([f"{name} must be a number above 0, got {value!r}"])


def dollars(amount: float) -> str:
    """Money for people: cents, or more digits for the small sums of test runs."""
    return f"${amount:,.2f}" if amount >= 1 or amount == 0 else f"${amount:.4f}"


@attrs.frozen
class Stop:
    """A limit was reached: `phase_id` None stops the whole run, else only that phase."""

    reason: str
    phase_id: str | None = None


@attrs.define
class _Meter:
    phase_id: str
    billing_key: str
    price: float
    started: float
    last: float


class BudgetMeter:
    """Spend per phase and in total, accrued on `clock` (monotonic seconds) between ticks.

    `spent_before` and `phase_spent_before` carry what earlier invocations of the same run spent
    (read back from the ledger), so the budget covers the run as a whole.
    """

    def __init__(
        self,
        config: BudgetConfig,
        *,
        clock: Clock = time.monotonic,
        spent_before: float = 0.0,
        phase_spent_before: Mapping[str, float] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.started = clock()
        self.spent_before = spent_before
        self.phase_spent: dict[str, float] = dict(phase_spent_before or {})
        self.spent = spent_before
        self.warned = False
        self._meters: dict[str, _Meter] = {}
        # Idle machine time no job pays for, by backend: what each reported last (dollars).
        self.idle_spent: dict[str, float] = {}

    # -- what runs -------------------------------------------------------------------------

    def start(self, phase_id: str, billing_key: str, price_per_hour: float) -> None:
        """Start metering a job of `phase_id` (its clock for `max_hours` starts now)."""
        now = self.clock()
        self._accrue(now)
        self._meters[phase_id] = _Meter(phase_id, billing_key, max(0.0, price_per_hour), now, now)
        self.phase_spent.setdefault(phase_id, 0.0)

    def set_price(self, phase_id: str, price_per_hour: float) -> None:
        """A job's price changed (a Vast instance's becomes known once it is rented)."""
        meter = self._meters.get(phase_id)
        if meter is not None and meter.price != price_per_hour:
            self._accrue(self.clock())
            meter.price = max(0.0, price_per_hour)

    def finish(self, phase_id: str) -> float:
        """Stop metering `phase_id`; returns what it has spent in all."""
        self._accrue(self.clock())
        self._meters.pop(phase_id, None)
        return self.phase_spent.get(phase_id, 0.0)

    def charge_idle(self, backend: str, idle_dollars: float) -> None:
        """Backend `backend`'s machines have stood idle for `idle_dollars` in all so far this
        invocation (`Backend.machines`): the increase since the last report is spent."""
        increase = idle_dollars - self.idle_spent.get(backend, 0.0)
        if increase > 0:
            self.idle_spent[backend] = idle_dollars
            self.spent += increase

    @property
    def idle_dollars(self) -> float:
        """What idle machines cost in this invocation (it is part of `spent`)."""
        return sum(self.idle_spent.values())

    @property
    def rate(self) -> float:
        """Dollars per hour being spent now."""
        return sum(self._key_prices().values())

    def running_hours(self, phase_id: str) -> float:
        """How long the job of `phase_id` has run in this invocation."""
        meter = self._meters.get(phase_id)
        return 0.0 if meter is None else (self.clock() - meter.started) / 3600

    @property
    def elapsed_hours(self) -> float:
        """How long this invocation of the run has gone on."""
        return (self.clock() - self.started) / 3600

    # -- accrual ---------------------------------------------------------------------------

    def _key_prices(self) -> dict[str, float]:
        prices: dict[str, float] = {}
        for meter in self._meters.values():
            prices[meter.billing_key] = max(prices.get(meter.billing_key, 0.0), meter.price)
        return prices

    def _accrue(self, now: float) -> None:
        by_key: dict[str, list[_Meter]] = {}
        for meter in self._meters.values():
            by_key.setdefault(meter.billing_key, []).append(meter)
        for meters in by_key.values():
            # One machine, one bill: its dearest job's price, shared by the jobs on it.
            price = max(m.price for m in meters)
            for meter in meters:
                hours = max(0.0, now - meter.last) / 3600
                share = hours * price / len(meters)
                self.phase_spent[meter.phase_id] = self.phase_spent.get(meter.phase_id, 0.0) + share
                self.spent += share
                meter.last = now

    # -- limits ----------------------------------------------------------------------------

    def check(self, projected_remaining: float = 0.0) -> tuple[list[Stop], str | None]:
        """Accrue to now; the limits reached, and a warning the first time the projection
        (spend so far + `projected_remaining` dollars) crosses the run's budget."""
        self._accrue(self.clock())
        stops: list[Stop] = []
        run = self.config.run
        if run.dollars is not None and self.spent >= run.dollars:
            stops.append(Stop(f"spent {dollars(self.spent)} of the {dollars(run.dollars)} budget"))
        elif run.max_hours is not None and self.elapsed_hours >= run.max_hours:
            stops.append(
                Stop(f"ran {_hours(self.elapsed_hours)} of the {_hours(run.max_hours)} limit")
            )
        for phase_id in list(self._meters):
            limits = self.config.phases.get(phase_id)
            if limits is None:
                continue
            spent = self.phase_spent.get(phase_id, 0.0)
            hours = self.running_hours(phase_id)
            if limits.dollars is not None and spent >= limits.dollars:
                reason = f"phase spent {dollars(spent)} of its {dollars(limits.dollars)} budget"
                stops.append(Stop(reason, phase_id))
            elif limits.max_hours is not None and hours >= limits.max_hours:
                reason = f"phase ran {_hours(hours)} of its {_hours(limits.max_hours)} limit"
                stops.append(Stop(reason, phase_id))
        warning = None
        projected = self.spent + max(0.0, projected_remaining)
        if not self.warned and not stops and run.dollars is not None and projected >= run.dollars:
            self.warned = True
            warning = (
                f"projected spend {dollars(projected)} crosses the {dollars(run.dollars)} "
                f"budget (spent {dollars(self.spent)} so far)"
            )
        return stops, warning

    def snapshot(self) -> dict[str, Any]:
        """What the ledger keeps: the run's total and each phase's share, in dollars."""
        return {
            "spent": round(self.spent, 6),
            "phases": {pid: round(v, 6) for pid, v in sorted(self.phase_spent.items()) if v > 0},
            "rate_per_hour": round(self.rate, 6),
            "budget": self.config.run.dollars,
            **({"idle": round(self.idle_dollars, 6)} if self.idle_dollars > 0 else {}),
        }


def _hours(hours: float) -> str:
    return f"{hours * 60:.1f} min" if hours < 1 else f"{hours:.2f} h"


def spent_so_far(events: Any) -> tuple[float, dict[str, float]]:
    """The latest spend a run's ledger records (its events, in order): total and per phase."""
    total = 0.0
    phases: dict[str, float] = {}
    for event in events:
        data = event.data
        if event.kind in ("spend", "run_finished") and "spent" in data:
            total = float(data["spent"])
            phases = {str(k): float(v) for k, v in dict(data.get("phases") or {}).items()}
    return total, phases


def stop_message(store_url: str, run_id: str) -> str:
    """One line for a run a limit stopped: which limit, what was spent, how to go on."""
    events = Ledger(ArtifactStore.open(store_url), run_id).events()
    finished = [e for e in events if e.kind == "run_finished"]
    data = finished[-1].data if finished else {}
    reason = str(data.get("reason") or "")
    if not reason:
        # A phase's own limit: name each phase it stopped in this invocation.
        since = since_last_start(events)
        reason = "; ".join(
            f"{e.phase_id}: {str(e.data.get('reason', '')).removeprefix('budget: ')}"
            for e in since
            if e.kind == "stopped"
        )
    spent = float(data.get("spent") or 0.0)
    return (
        f"budget exceeded: run {run_id} stopped: {reason} (spent {dollars(spent)} in all); "
        "run it again with a larger --budget or --max-hours to resume"
    )
