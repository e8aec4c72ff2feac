"""This process's intra-op threads, fitted to the machine as it is, not as it was built.

PyTorch's CPU kernels run on OpenMP threads, one per core by default, whose workers spin at
every barrier waiting for the others. Beside one other busy process on 2 cores one of them is
always descheduled while the other spins: `bert4rec train ml-latest-small --epochs 8` took
69.7 s at 2 threads against 10.8 s alone, and 15.9 s at 1 thread (docs/performance.md,
"Threads beside other work"). Passive waiting cures that but costs 40% alone.

So the count follows the machine: the cores this process may use (its CPU affinity, within a
cgroup CPU quota where there is one) less the cores' worth of other work on them, rounded, at
least one. The other work is the CPU time the allowed cores spent busy (/proc/stat) less this
process's own. A command's first count measures it over the window since the CLI started (at
least a quarter second); while a command runs, `tick()` measures it every INTERVAL_S seconds
and sets the count again when it changed; a later command in the same process starts from
that measurement. A count asked for (`--threads N`, `threads=`, BERT4REC_THREADS or
OMP_NUM_THREADS) is kept as given.

The OpenMP wait policy is read once, when the runtime loads with torch: `prepare_process`
sets OMP_WAIT_POLICY=PASSIVE before that, only where a count asked for is more than the free
cores (fitted counts never are, and spinning is what makes them fast alone).

A run is bit-for-bit repeatable only at a fixed count: 1 and 2 threads sum in different
orders. The log says every count chosen and why.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

ENV = "BERT4REC_THREADS"
"""A fixed thread count for every command, as `--threads N` gives one."""
HELP = ("torch threads (default: fitted to the free cores at start and every few seconds "
        f"after; {ENV} sets a default; a fixed count makes runs repeatable bit for bit)")
"""The `--threads` flag's help, for every command that has it."""
INTERVAL_S = 2.0
"""Seconds between measurements of the other work while a command runs: short enough that a
busy neighbour costs at most this long at the wrong count, long enough to measure."""
FIRST_WINDOW_S = 0.25
"""The shortest window a first measurement averages over: /proc/stat counts in ticks of 10 ms,
so a quarter second reads a busy core within a few percent. The one-minute load average it
replaces lags a neighbour that just started or stopped by a minute, and counts this process's
own last command."""
STAT = Path("/proc/stat")
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
WAIT_POLICY = "OMP_WAIT_POLICY"
OPENMP_WAIT = (WAIT_POLICY, "GOMP_SPINCOUNT", "KMP_BLOCKTIME")  # a choice the user made
BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user, nice, system, irq, softirq, steal (not idle, iowait)


def fitted_threads(cores: int, others: float) -> int:
    """Threads for `cores` usable cores of which `others` cores' worth are taken by other
    work: the free cores rounded (half a core busy counts as taken), at least one."""
    return max(1, min(cores, math.floor(cores - others + 0.5)))


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity; every CPU where that is unknown)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def usable_cores(cpus: list[int], quota: Path = CGROUP_CPU_MAX) -> int:
    """How many of `cpus` this process can keep busy: their number, or fewer under a cgroup
    CPU quota (`cpu.max`: QUOTA PERIOD, or `max` for none)."""
    try:
        limit, period = quota.read_text().split()[:2]
        if limit != "max":
            return max(1, min(len(cpus), math.ceil(int(limit) / int(period))))
    except (OSError, ValueError):
        pass
    return len(cpus)


def asked_threads(requested: int | None, env: Mapping[str, str] = os.environ) -> int | None:
    """The count asked for: `requested`, else BERT4REC_THREADS, else OMP_NUM_THREADS (as
    torchrun sets it); None to fit the count to the machine."""
    for name, value in (("threads", requested), (ENV, env.get(ENV)),
                        ("OMP_NUM_THREADS", env.get("OMP_NUM_THREADS"))):
        if value is None or value == "":
            continue
        try:
            count = int(value)
        except ValueError:
            count = 0
        if count < 1:
            raise ValueError(f"{name} must be a whole number of threads, at least 1, got "
                             f"{value!r}")
        return count
    return None


def busy_seconds(stat: str, cpus: list[int], tick_hz: float) -> float:
    """Seconds the CPUs `cpus` have spent busy since boot, from /proc/stat's text."""
    wanted = {f"cpu{cpu}" for cpu in cpus}
    total = 0
    for line in stat.splitlines():
        name, *fields = line.split()
        if name in wanted:
            total += sum(int(fields[i]) for i in BUSY_FIELDS if i < len(fields))
    return total / tick_hz


class OtherWork:
    """Cores' worth of other processes' work on this process's CPUs since the last reading:
    their busy time (/proc/stat) less this process's own CPU time, per second of wall time.
    Where /proc/stat cannot be read, the load average less this process's own share."""

    def __init__(self, cpus: list[int], stat: Path = STAT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cpus, self.stat, self.clock = cpus, stat, clock
        self.tick_hz = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self.last = self._now()
        self.latest: float | None = None  # the last reading

    def _busy(self) -> float | None:
        try:
            return busy_seconds(self.stat.read_text(), self.cpus, self.tick_hz)
        except (OSError, ValueError, IndexError):
            return None

    def _now(self) -> tuple[float, float, float | None]:
        return self.clock(), time.process_time(), self._busy()

    def age(self) -> float:
        """Seconds since the last reading (or since this meter started)."""
        return self.clock() - self.last[0]

    def read(self) -> float:
        """Other work since the last `read` (or since this meter started)."""
        (wall0, own0, busy0), now = self.last, self._now()
        self.last = now
        wall, own = max(now[0] - wall0, 1e-9), (now[1] - own0) / max(now[0] - wall0, 1e-9)
        if busy0 is None or now[2] is None:
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
            self.latest = max(0.0, load - own)
        else:
            self.latest = max(0.0, (now[2] - busy0) / wall - own)
        return self.latest


_meters: dict[tuple[int, ...], OtherWork] = {}


def meter_for(cpus: list[int]) -> OtherWork:
    """This process's meter of the other work on `cpus`, kept from its first use: a later
    command in the same process (a notebook's next call) measures the other work instead of
    reading the load average, which counts this process's own recent work too."""
    key = tuple(cpus)
    if key not in _meters:
        _meters[key] = OtherWork(cpus)
    return _meters[key]


def start_measuring() -> None:
    """Start this process's meter of the other work now, so that the first command's count
    comes from a window of /proc/stat (the CLI calls it before its imports and data loading)."""
    meter_for(usable_cpus())


def other_work_now(meter: OtherWork, sleep: Callable[[float], None] = time.sleep) -> float:
    """The other work to fit a count to as a command starts: the meter's latest reading where
    it is newer than INTERVAL_S, else measured since its last reading, over at least
    FIRST_WINDOW_S (waiting out the rest of that where the meter has only just started)."""
    if meter.latest is not None and meter.age() <= INTERVAL_S:
        return meter.latest
    remaining = FIRST_WINDOW_S - meter.age()
    if remaining > 0:
        sleep(remaining)
    return meter.read()


def start_load() -> float:
    """Other work before this process did any: the one-minute load average (0 where none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def set_torch_threads(count: int) -> None:
    import torch

    torch.set_num_threads(count)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


@dataclass
class Governor:
    """Keeps this process's intra-op thread count fitted to the machine: `start` chooses it,
    `tick` measures the other work every `interval` seconds and changes it where it should.
    With `asked` set the count is that, always."""

    asked: int | None
    cores: int
    meter: OtherWork | None = None
    interval: float = INTERVAL_S
    clock: Callable[[], float] = time.monotonic
    threads: int = 0
    checked: float = 0.0

    def start(self, others: float) -> int:
        """Set the count for `others` cores' worth of work seen at start; log it and why."""
        if self.asked is not None:
            self.threads = self.asked
            why = f"asked for; {self.cores} usable cores"
        else:
            self.threads = fitted_threads(self.cores, others)
            why = f"fitted: {self.cores} usable cores, {others:.1f} busy with other work"
        set_torch_threads(self.threads)
        self.checked = self.clock()
        policy = os.environ.get(WAIT_POLICY, "OpenMP's default (spin, then sleep)")
        logger.info("threads: %d (%s); OpenMP wait policy: %s", self.threads, why, policy)
        return self.threads

    def tick(self) -> None:
        """Every `interval` seconds, fit the count to the other work measured since the last
        time (no-op for a count asked for)."""
        if self.asked is not None or self.meter is None:
            return
        now = self.clock()
        if now - self.checked < self.interval:
            return
        self.checked = now
        others = self.meter.read()
        count = fitted_threads(self.cores, others)
        if count != self.threads or count != torch_threads():
            logger.info("threads: %d, was %d (%.1f of %d cores busy with other work over "
                        "the last %.0f s)", count, self.threads, others, self.cores,
                        self.interval)
            self.threads = count
            set_torch_threads(count)


_current: list[Governor] = []


@contextmanager
def governed(requested: int | None = None) -> Iterator[Governor]:
    """Within: this process's intra-op threads are `requested` (or BERT4REC_THREADS,
    OMP_NUM_THREADS), or else fitted to the machine now and again at each `tick()`. The
    count before is set again on the way out."""
    before = torch_threads()
    cpus = usable_cpus()
    asked = asked_threads(requested)
    meter = None if asked else meter_for(cpus)
    governor = Governor(asked, usable_cores(cpus), meter, interval=INTERVAL_S)
    governor.start(other_work_now(meter) if meter is not None else 0.0)
    _current.append(governor)
    try:
        yield governor
    finally:
        _current.remove(governor)
        set_torch_threads(before)


def tick() -> None:
    """Let the innermost `governed` block fit the count again if it is time; no-op outside
    one. Cheap: a clock read, and a file read every INTERVAL_S."""
    if _current:
        _current[-1].tick()


def wait_policy(asked: int | None, cores: int, others: float) -> str | None:
    """OMP_WAIT_POLICY for a process about to start: PASSIVE where a count asked for is more
    than the free cores (its workers would spin while others hold the cores), else None."""
    if asked is None or asked <= 1 or asked <= fitted_threads(cores, others):
        return None
    return "PASSIVE"


def prepare_process(requested: int | None, env: dict[str, str] | None = None) -> str | None:
    """Set OMP_WAIT_POLICY in `env` (the process's environment) as `wait_policy` says,
    unless the user set an OpenMP wait setting. Takes effect only before torch is imported;
    the choice carries over to a restarted process. Returns what it set."""
    env = os.environ if env is None else env
    if any(name in env for name in OPENMP_WAIT):
        return None
    try:
        asked = asked_threads(requested, env)
    except ValueError:  # `governed` refuses it, in the command's own words
        return None
    policy = wait_policy(asked, usable_cores(usable_cpus()), start_load())
    if policy is not None:
        env[WAIT_POLICY] = policy
    return policy
