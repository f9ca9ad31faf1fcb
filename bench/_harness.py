"""Shared harness of bench/latency.py and bench/scale.py.

A real Home Assistant core in-process (the same steps as `homeassistant.bootstrap`, minus
the default integrations: base registries, config entries, custom-integration loader),
the real component set up from a config entry with circuit and charger subentries,
simulated chargers from `simulator/` over real websockets on 127.0.0.1, an HA sensor
meter, an event-loop lag probe and an OCPP message counter.

Also a command line for a separate simulator process (used by bench/scale.py so that the
Home Assistant process is measured alone):

    python bench/_harness.py fleet --url ws://127.0.0.1:PORT/ocpp --count N [...]
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
import contextlib
import cProfile
import gc
import json
import logging
import os
from pathlib import Path
import resource
import signal
import sys
import tempfile
import time
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Imported first so that custom_components resolves to this repository (TOOLCHAIN.md).
from custom_components.ocpp_power.const import DOMAIN, PROFILE_ID_DYNAMIC  # noqa: E402
from simulator.charger import SimCharger  # noqa: E402
from simulator.ev import EV  # noqa: E402

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry, ConfigSubentryData
    from homeassistant.core import HomeAssistant

PASSWORD = "bench-secret"
PHASE_SENSORS = ("sensor.bench_meter_l1", "sensor.bench_meter_l2", "sensor.bench_meter_l3")


# ---------------------------------------------------------------------- process setup


def quiet_logging() -> None:
    """Warnings only; the ocpp library logs every frame at INFO."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    # "We found a custom integration ... not tested by Home Assistant": expected here.
    logging.getLogger("homeassistant.loader").setLevel(logging.ERROR)


def raise_nofile(wanted: int) -> int:
    """Raise the soft open-files limit towards wanted (each websocket is a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def loop_factory() -> asyncio.AbstractEventLoop:
    """Return an event loop set up the way Home Assistant's runner sets up its own."""
    from homeassistant.runner import HassEventLoopPolicy

    return HassEventLoopPolicy(False).new_event_loop()


def percentile(values: Sequence[float], p: float) -> float:
    """Return the p-th percentile (0..100), linear interpolation between ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# ---------------------------------------------------------------------- Home Assistant


async def start_home_assistant(config_dir: str) -> HomeAssistant:
    """Build and start a real Home Assistant core (no default integrations)."""
    from homeassistant import bootstrap, config_entries, loader
    from homeassistant.core import HomeAssistant

    hass = HomeAssistant(config_dir)
    await hass.config.async_set_time_zone("UTC")
    hass.config.skip_pip = True
    loader.async_setup(hass)
    hass.config_entries = config_entries.ConfigEntries(hass, {})
    await loader.async_get_custom_components(hass)
    await bootstrap.async_load_base_functionality(hass)
    await hass.async_start()
    return hass


@contextlib.asynccontextmanager
async def home_assistant(hass: HomeAssistant | None = None) -> AsyncIterator[HomeAssistant]:
    """Yield the given Home Assistant (tests), or build one in a temp dir and stop it after."""
    if hass is not None:
        yield hass
        return
    with tempfile.TemporaryDirectory(prefix="ocpp-power-bench-") as config_dir:
        own = await start_home_assistant(config_dir)
        try:
            yield own
        finally:
            await own.async_stop()


def circuit_subentry(circuit_id: str, **data: Any) -> ConfigSubentryData:
    """Return one circuit subentry (panel kind, 3 phases, no margin unless given)."""
    from homeassistant.config_entries import ConfigSubentryData

    values = {
        "circuit_id": circuit_id,
        "kind": "panel",
        "phases": "l1_l2_l3",
        "voltage": 230.0,
        "safety_margin": 0.0,
        "meter": "none",
        "meter_includes_chargers": False,
    } | {k: v for k, v in data.items() if v is not None}
    return ConfigSubentryData(
        data=values, subentry_type="circuit", title=circuit_id, unique_id=circuit_id
    )


def charger_subentry(charger_id: str, circuit: str, max_current: float) -> ConfigSubentryData:
    """Return one 3-phase charger subentry on a circuit."""
    from homeassistant.config_entries import ConfigSubentryData

    return ConfigSubentryData(
        data={
            "charger_id": charger_id,
            "password": PASSWORD,
            "phases": "l1_l2_l3",
            "min_current": 6.0,
            "max_current": max_current,
            "id_tags": "",
            "circuit": circuit,
        },
        subentry_type="charger",
        title=charger_id,
        unique_id=charger_id,
    )


async def setup_hub(
    hass: HomeAssistant, subentries: list[ConfigSubentryData], **hub_data: Any
) -> ConfigEntry:
    """Add and set up a hub entry on 127.0.0.1 with an OS-chosen port."""
    from homeassistant.config_entries import SOURCE_USER, ConfigEntry, ConfigEntryState

    entry = ConfigEntry(
        data={
            "host": "127.0.0.1",
            "port": 0,
            "basic_auth": True,
            "unknown_chargers": "reject",
        }
        | hub_data,
        discovery_keys=MappingProxyType({}),
        domain=DOMAIN,
        minor_version=1,
        options={},
        source=SOURCE_USER,
        subentries_data=subentries,
        title="OCPP Power Manager (bench)",
        unique_id=None,
        version=1,
    )
    await hass.config_entries.async_add(entry)
    await hass.async_block_till_done()
    if entry.state is not ConfigEntryState.LOADED:
        raise RuntimeError(f"hub entry not loaded: {entry.state}")
    return entry


async def remove_hub(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Unload and remove the hub entry (closes every connection, frees the port)."""
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()


def hub_url(entry: ConfigEntry) -> str:
    """Return the base websocket URL of the hub; chargers append their id."""
    return f"ws://127.0.0.1:{entry.runtime_data.port}/ocpp"


class PhaseMeter:
    """A per-phase current meter as three HA sensors, reporting every `interval_s`."""

    def __init__(
        self,
        hass: HomeAssistant,
        amps: tuple[float, float, float],
        interval_s: float = 1.0,
        entity_ids: Sequence[str] = PHASE_SENSORS,
    ) -> None:
        self.hass = hass
        self.amps = list(amps)
        self.interval_s = interval_s
        self.entity_ids = tuple(entity_ids)
        self._task: asyncio.Task[None] | None = None

    def _write(self, phase: int) -> None:
        self.hass.states.async_set(
            self.entity_ids[phase],
            f"{self.amps[phase]:.2f}",
            {"unit_of_measurement": "A", "device_class": "current"},
        )

    def publish(self) -> None:
        """Report every phase (an unchanged value is a state report, not a change)."""
        for phase in range(3):
            self._write(phase)

    def step(self, phase: int, amps: float) -> float:
        """Change one phase now; return time.monotonic() just before the state change."""
        self.amps[phase] = amps
        t0 = time.monotonic()
        self._write(phase)
        return t0

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.publish()

    def start(self) -> None:
        """Publish now and then periodically."""
        self.publish()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop publishing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


# ---------------------------------------------------------------------- measuring


class MessageCounter:
    """Counts OCPP frames the central system receives (calls by action, and results)."""

    def __init__(self) -> None:
        self.count = 0
        self.kinds: Counter[str] = Counter()

    def add(self, message: str) -> None:
        """Count one OCPP-J frame: [2, id, action, payload] or [3|4, id, ...]."""
        self.count += 1
        parts = message.split(",", 3)
        kind = parts[0].strip("[ ")
        self.kinds[parts[2].strip(' "') if kind == "2" and len(parts) > 2 else f"type{kind}"] += 1


@contextlib.contextmanager
def count_messages() -> Iterator[MessageCounter]:
    """Wrap the central system's websocket adapter, in this process only, to count frames."""
    from custom_components.ocpp_power import central_system

    adapter = central_system.WebSocketAdapter
    original = adapter.recv
    counter = MessageCounter()

    async def recv(self: Any) -> str:
        message = await original(self)
        counter.add(message)
        return message

    adapter.recv = recv  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        adapter.recv = original  # type: ignore[method-assign]


@contextlib.contextmanager
def time_passes() -> Iterator[list[float]]:
    """Record the duration (ms) of every allocation pass, in this process only."""
    from custom_components.ocpp_power.manager import PowerManager

    original = PowerManager._run_pass
    durations: list[float] = []
    # OCPP_POWER_PROFILE=FILE: profile every pass with cProfile, stats written to FILE.
    profile_path = os.environ.get("OCPP_POWER_PROFILE")
    profiler = cProfile.Profile() if profile_path else None

    # OCPP_POWER_PROFILE_SKIP=N: leave the first N passes (the boot) out of the profile.
    skip = int(os.environ.get("OCPP_POWER_PROFILE_SKIP", "0"))

    def run_pass(self: Any) -> None:
        start = time.perf_counter()
        profiling = profiler is not None and len(durations) >= skip
        if profiling:
            profiler.enable()
        try:
            original(self)
        finally:
            if profiling:
                profiler.disable()
            durations.append((time.perf_counter() - start) * 1000)

    PowerManager._run_pass = run_pass  # type: ignore[method-assign]
    try:
        yield durations
    finally:
        PowerManager._run_pass = original  # type: ignore[method-assign]
        if profiler is not None and profile_path:
            profiler.dump_stats(profile_path)


class LoopLagProbe:
    """Sleeps `interval_s` over and over and records how late it wakes (ms)."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.samples.append((time.perf_counter() - start - self.interval_s) * 1000)

    def start(self) -> None:
        """Start probing (clears earlier samples)."""
        self.samples = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop probing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class GcPauses:
    """Records how long each garbage collection of this process takes (ms, by generation)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._start = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.append((info["generation"], (time.perf_counter() - self._start) * 1000))

    def start(self) -> None:
        """Start recording (clears earlier pauses)."""
        self.pauses = []
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def stop(self) -> None:
        """Stop recording."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)


def dynamic_profiles(sim: SimCharger, start: int = 0) -> list[tuple[float, float]]:
    """Return (monotonic receipt time, limit) of the leased dynamic profiles from index start."""
    out = []
    for received_at, payload in sim.received_profiles[start:]:
        profile = payload["csChargingProfiles"]
        if profile.get("chargingProfileId") == PROFILE_ID_DYNAMIC:
            period = profile["chargingSchedule"]["chargingSchedulePeriod"][0]
            out.append((received_at, float(period["limit"])))
    return out


async def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll predicate every 20 ms; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------------- simulated chargers


def make_sims(
    url: str,
    ids: Sequence[str],
    *,
    max_current_a: float,
    reaction_delay_s: float,
    step_s: float,
) -> list[SimCharger]:
    """Create 3-phase simulated chargers, each with a car that takes max_current_a."""
    return [
        SimCharger(
            charger_id,
            f"{url}/{charger_id}",
            password=PASSWORD,
            ev=EV(battery_kwh=80, soc=0.2, max_current_a=max_current_a, phases=3),
            phases=3,
            max_current_a=max_current_a,
            reaction_delay_s=reaction_delay_s,
            step_s=step_s,
            backoff_s=(1.0, 10.0),
        )
        for charger_id in ids
    ]


async def start_sims(
    sims: Sequence[SimCharger],
    *,
    concurrency: int = 50,
    spread_s: float = 10.0,
    rate_per_s: float = 50.0,
    timeout_s: float = 60.0,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Boot the chargers at a steady pace, at most `concurrency` booting at once, and plug in.

    Starts are spread over max(spread_s, n / rate_per_s) seconds: no thundering herd, and
    since the hub sets the meter interval at boot, MeterValues arrive spread over time too
    (not in bursts of chargers that booted together).
    """
    if not sims:
        return
    gate = asyncio.Semaphore(concurrency)
    span = max(spread_s, len(sims) / rate_per_s)
    loop = asyncio.get_running_loop()
    begin = loop.time()
    booted = 0

    async def boot(index: int, sim: SimCharger) -> None:
        nonlocal booted
        await asyncio.sleep(max(0.0, begin + index * span / len(sims) - loop.time()))
        async with gate:
            await sim.start(wait=True, timeout=timeout_s)
        await sim.plug_in()
        booted += 1
        if on_progress is not None and (booted % 100 == 0 or booted == len(sims)):
            on_progress(booted)

    await asyncio.gather(*(boot(i, sim) for i, sim in enumerate(sims)))


async def stop_sims(sims: Sequence[SimCharger]) -> None:
    """Stop every charger."""
    await asyncio.gather(*(sim.stop() for sim in sims), return_exceptions=True)


# ---------------------------------------------------------------------- fleet process


def _fleet_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python bench/_harness.py fleet")
    parser.add_argument("--url", required=True, help="hub base URL, without the charger id")
    parser.add_argument("--ids", required=True, help="comma-separated charger ids")
    parser.add_argument("--max-current", type=float, default=16.0)
    parser.add_argument("--reaction-delay", type=float, default=1.0)
    parser.add_argument("--step-s", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=50, help="chargers booting at once")
    parser.add_argument("--spread-s", type=float, default=10.0, help="spread the starts over")
    return parser.parse_args(argv)


async def _run_fleet(args: argparse.Namespace) -> None:
    """Boot the fleet at a steady pace, report progress as JSON lines, run until stdin closes."""
    raise_nofile(len(args.ids.split(",")) + 256)
    sims = make_sims(
        args.url,
        args.ids.split(","),
        max_current_a=args.max_current,
        reaction_delay_s=args.reaction_delay,
        step_s=args.step_s,
    )

    def report(booted: int) -> None:
        print(json.dumps({"booted": booted}), flush=True)

    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    # The parent closes our stdin when it is finished (or dies).
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.readline() or done.set())
    starter = loop.create_task(
        start_sims(sims, concurrency=args.concurrency, spread_s=args.spread_s, on_progress=report)
    )
    await done.wait()
    starter.cancel()
    # Leave without goodbyes: closing 1,000 websockets politely takes longer than it tells.
    sys.stdout.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the fleet process."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "fleet":
        print(__doc__, file=sys.stderr)
        return 2
    quiet_logging()
    asyncio.run(_run_fleet(_fleet_args(argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
