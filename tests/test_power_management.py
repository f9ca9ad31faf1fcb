"""End to end: real HA, the real hub and manager, simulated chargers over real websockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import suppress
import socket
import time
from typing import Any
from unittest.mock import patch

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ocpp_power.const import DOMAIN, EVENT_OVERLOAD
from custom_components.ocpp_power.models import ChargeMode, LimitReason
from simulator.charger import SimCharger
from simulator.ev import EV

from .helpers import DEFAULT_PASSWORD, charger_subentry, circuit_subentry, setup_hub, ws_url

pytestmark = pytest.mark.usefixtures("socket_enabled")

TIMEOUT = 15.0
HOUSE = ("sensor.house_l1", "sensor.house_l2", "sensor.house_l3")


@pytest.fixture(autouse=True)
def fast_metering() -> Generator[None]:
    """Have chargers send a meter sample every second."""
    with patch("custom_components.ocpp_power.charge_point.v16.METER_SAMPLE_INTERVAL_S", 1):
        yield


@pytest.fixture
async def sims() -> AsyncGenerator[list[SimCharger]]:
    """Simulated chargers a test starts; all stopped at the end."""
    started: list[SimCharger] = []
    yield started
    for sim in started:
        await sim.stop()


async def _hub(hass: HomeAssistant, subentries: list[Any], **data: Any) -> MockConfigEntry:
    return await setup_hub(hass, subentries, **data)


async def _start(
    sims: list[SimCharger],
    entry: MockConfigEntry,
    charger_id: str,
    *,
    wait_ready: bool = True,
    **kwargs: Any,
) -> SimCharger:
    options: dict[str, Any] = {
        "password": DEFAULT_PASSWORD,
        "reaction_delay_s": 0.2,
        "meter_interval_s": 1.0,
        "step_s": 0.1,
        "backoff_s": (0.1, 0.5),
        "ev": EV(battery_kwh=60, soc=0.2, max_current_a=32, phases=3),
    } | kwargs
    sim = SimCharger(charger_id, ws_url(entry, charger_id), **options)
    sims.append(sim)
    await sim.start(timeout=TIMEOUT)
    if wait_ready:
        # Ready once the manager has installed its first dynamic limit.
        await _until(entry.runtime_data.hass, lambda: bool(_dynamic_limits(sim)), "ready")
    return sim


async def _until(
    hass: HomeAssistant, predicate: Callable[[], bool], what: str, within_s: float = TIMEOUT
) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    await hass.async_block_till_done()


def _dynamic_limits(sim: SimCharger) -> list[float]:
    """Limits of the dynamic (leased) profiles the charger received, in order."""
    out = []
    for _, payload in sim.received_profiles:
        profile = payload["csChargingProfiles"]
        if profile["chargingProfileId"] == 9003:
            out.append(float(profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]))
    return out


def _set_house(hass: HomeAssistant, amps: tuple[float, float, float] | str) -> None:
    for i, entity_id in enumerate(HOUSE):
        value = amps if isinstance(amps, str) else str(amps[i])
        hass.states.async_set(entity_id, value, {"unit_of_measurement": "A"})


async def _unload(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_three_chargers_share_a_panel(hass: HomeAssistant, sims: list[SimCharger]) -> None:
    entry = await _hub(
        hass,
        [
            circuit_subentry("garage", max_current=32),
            *(charger_subentry(f"cp{i}", max_current=16, circuit="garage") for i in (1, 2, 3)),
        ],
    )
    chargers = [await _start(sims, entry, f"cp{i}") for i in (1, 2, 3)]
    for sim in chargers:
        await sim.plug_in()
    # A fair share each (32 A / 3, in 0.1 A steps), drawn by the simulated cars.
    await _until(
        hass,
        lambda: all(10.55 < s.current_a[0] < 10.75 for s in chargers),
        "fair share drawn",
    )
    manager = entry.runtime_data.manager
    for i in (1, 2, 3):
        status = manager.charger_status(f"cp{i}")
        assert status.allocated_a in (10.6, 10.7)
        assert status.reason is LimitReason.LIMITED_BY_CIRCUIT
        assert status.limiting_circuit == "garage"
    # Every phase of the panel is inside its limit, and nothing is wasted.
    for phase in range(3):
        assert sum(s.current_a[phase] for s in chargers) <= 32 + 1e-6
    circuit = manager.circuit_status("garage")
    assert circuit.allocated_a == pytest.approx((32.0, 32.0, 32.0))
    # Every charger also holds an offline safe share that fits the panel on its own.
    await _until(
        hass,
        lambda: all(manager.charger_status(f"cp{i}").offline_share_a for i in (1, 2, 3)),
        "safe defaults installed",
    )
    shares = [manager.charger_status(f"cp{i}").offline_share_a or 0.0 for i in (1, 2, 3)]
    assert sum(shares) <= 32
    for sim, share in zip(chargers, shares, strict=True):
        # The charger holds it as its stack-level-0 default profile.
        assert sim.profiles.limit_a(1, time.time() + 3600) == pytest.approx(share)
    await _unload(hass, entry)


async def _house_metered_panel(hass: HomeAssistant) -> MockConfigEntry:
    """A 40 A panel with a house-only meter (5 A per phase) and two 16 A chargers."""
    _set_house(hass, (5, 5, 5))
    return await _hub(
        hass,
        [
            circuit_subentry(
                "main",
                max_current=40,
                meter="current",
                current_sensors=list(HOUSE),
                meter_includes_chargers=False,
            ),
            *(charger_subentry(f"cp{i}", max_current=16, circuit="main") for i in (1, 2)),
        ],
    )


async def test_house_load_step_cuts_in_same_pass(
    hass: HomeAssistant, sims: list[SimCharger]
) -> None:
    entry = await _house_metered_panel(hass)
    chargers = [await _start(sims, entry, f"cp{i}") for i in (1, 2)]
    for sim in chargers:
        await sim.plug_in()
    await _until(
        hass, lambda: all(s.current_a[0] == pytest.approx(16) for s in chargers), "full draw"
    )
    before = [len(_dynamic_limits(s)) for s in chargers]
    # The house load jumps: the cut goes out in the same event-loop pass.
    _set_house(hass, (30, 12, 12))
    await hass.async_block_till_done()
    await _until(
        hass,
        lambda: all(len(_dynamic_limits(s)) > n for s, n in zip(chargers, before, strict=True)),
        "cut profiles",
    )
    cut = [_dynamic_limits(s)[-1] for s in chargers]
    # L1 has 10 A left: two 5 A shares are below the 6 A minimum, so one car pauses.
    assert sum(cut) + 30 <= 40
    assert sorted(cut) == [0.0, 10.0]
    await _until(
        hass, lambda: sum(s.current_a[0] for s in chargers) <= 10.05, "draws follow the cut"
    )
    await _unload(hass, entry)


async def test_a_slow_charger_holds_up_no_other_cut(
    hass: HomeAssistant, sims: list[SimCharger]
) -> None:
    entry = await _house_metered_panel(hass)
    cp1, cp2 = [await _start(sims, entry, f"cp{i}") for i in (1, 2)]
    for sim in (cp1, cp2):
        await sim.plug_in()
    await _until(hass, lambda: cp1.current_a[0] == cp2.current_a[0] == 16, "full draw")
    # cp2 now takes 6 s to answer a profile; a house-load step cuts both chargers.
    cp2.profile_answer_delay_s = 6.0
    seen1, seen2 = len(_dynamic_limits(cp1)), len(_dynamic_limits(cp2))
    _set_house(hass, (14, 14, 14))
    await hass.async_block_till_done()
    await _until(hass, lambda: len(_dynamic_limits(cp1)) > seen1, "first cut")
    assert _dynamic_limits(cp1)[-1] == 13.0
    # The house load rises again while cp2 is still busy with its first cut: cp1's
    # second cut must not wait for cp2's answer.
    seen1 = len(_dynamic_limits(cp1))
    _set_house(hass, (20, 20, 20))
    await hass.async_block_till_done()
    await _until(hass, lambda: len(_dynamic_limits(cp1)) > seen1, "second cut")
    assert _dynamic_limits(cp1)[-1] == 10.0
    assert len(_dynamic_limits(cp2)) == seen2, "cp2 answered already: the test proves nothing"
    # cp2 ends at its latest limit, not at the older one it was answering.
    await _until(hass, lambda: cp2.profiles.limit_a(1, time.time()) == 10.0, "cp2 cut", 30)
    cp2.profile_answer_delay_s = 0.0
    await _unload(hass, entry)


async def test_meter_unavailable_falls_back_and_recovers(
    hass: HomeAssistant, sims: list[SimCharger]
) -> None:
    _set_house(hass, (4, 4, 4))
    entry = await _hub(
        hass,
        [
            circuit_subentry(
                "main",
                max_current=25,
                meter="current",
                current_sensors=list(HOUSE),
                meter_includes_chargers=False,
            ),
            charger_subentry("cp1", max_current=32, circuit="main"),
        ],
    )
    sim = await _start(sims, entry, "cp1")
    await sim.plug_in()
    await _until(hass, lambda: sim.current_a[0] == pytest.approx(21, abs=0.05), "21 A")
    manager = entry.runtime_data.manager
    _set_house(hass, "unavailable")
    # Fallback: the last known house load plus a margin (3 A), at once (not after the
    # 60 s a silent meter takes to count as stale).
    await _until(hass, lambda: manager.circuit_status("main").meter_stale, "fallback")
    assert manager.charger_status("cp1").allocated_a == pytest.approx(18)
    issues = ir.async_get(hass)
    assert issues.async_get_issue(DOMAIN, "meter_unavailable_main") is not None
    await _until(hass, lambda: sim.current_a[0] == pytest.approx(18, abs=0.05), "fallback")
    _set_house(hass, (4, 4, 4))
    await _until(hass, lambda: not manager.circuit_status("main").meter_stale, "meter back")
    assert issues.async_get_issue(DOMAIN, "meter_unavailable_main") is None
    await _unload(hass, entry)


class PanelMeter:
    """A panel meter that measures the house load plus what the simulated chargers draw."""

    def __init__(self, hass: HomeAssistant, chargers: list[SimCharger]) -> None:
        self.hass = hass
        self.chargers = chargers
        self.house = (0.0, 0.0, 0.0)
        self._task: asyncio.Task[None] | None = None

    def publish(self) -> None:
        total = [
            self.house[i] + sum(s.current_a[i] for s in self.chargers if s.connected)
            for i in range(3)
        ]
        _set_house(self.hass, (total[0], total[1], total[2]))

    async def _run(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(0.2)

    def start(self) -> None:
        self._task = self.hass.async_create_background_task(self._run(), "panel meter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task


async def test_disconnect_on_metered_panel_redistributes(
    hass: HomeAssistant, sims: list[SimCharger]
) -> None:
    # The panel meter measures everything on it, chargers included.
    _set_house(hass, (0, 0, 0))
    entry = await _hub(
        hass,
        [
            circuit_subentry("main", max_current=24, meter="current", current_sensors=list(HOUSE)),
            *(charger_subentry(f"cp{i}", max_current=32, circuit="main") for i in (1, 2)),
        ],
    )
    cp1, cp2 = [await _start(sims, entry, f"cp{i}") for i in (1, 2)]
    meter = PanelMeter(hass, [cp1, cp2])
    meter.start()
    await cp1.plug_in()
    await cp2.plug_in()
    await _until(hass, lambda: cp1.current_a[0] == pytest.approx(12), "half each")
    await _until(hass, lambda: cp2.current_a[0] == pytest.approx(12), "half each")
    await cp2.unplug()
    await cp2.stop()
    manager = entry.runtime_data.manager
    await _until(
        hass, lambda: manager.charger_status("cp2").reason is LimitReason.OFFLINE, "offline"
    )
    # The meter shows what cp2 still draws (nothing), so its share goes to cp1. Slowly:
    # each raise shows on the panel meter before cp1's own MeterValues do, and the
    # non-EV estimate rises at once and falls with the smoothing (10 s time constant);
    # the last amp comes as a small raise (below the 1 A deadband) a minute later.
    await _until(hass, lambda: cp1.current_a[0] >= 23, "redistributed", within_s=60)
    for phase in range(3):
        assert cp1.current_a[phase] <= 24
    await meter.stop()
    await _unload(hass, entry)


async def test_offline_charger_keeps_its_lease_then_its_safe_share(
    hass: HomeAssistant, sims: list[SimCharger]
) -> None:
    entry = await _hub(
        hass,
        [
            circuit_subentry("main", max_current=32),
            charger_subentry("cp1", max_current=16, circuit="main"),
            charger_subentry("cp2", max_current=32, circuit="main"),
            charger_subentry("cp3", max_current=16, circuit="main"),
        ],
        lease_s=3,
    )
    cp1, cp2, _cp3 = [await _start(sims, entry, f"cp{i}") for i in (1, 2, 3)]
    await cp1.plug_in()
    await cp2.plug_in()
    await _until(hass, lambda: cp1.current_a[0] == pytest.approx(16), "cp1 at 16 A")
    await _until(hass, lambda: cp2.current_a[0] == pytest.approx(16), "cp2 at 16 A")
    manager = entry.runtime_data.manager
    share = manager.charger_status("cp1").offline_share_a
    assert share is not None
    assert 10.6 <= share <= 10.7  # a third of the panel each, in 0.1 A steps
    await cp1.stop()  # gone without a word: it may go on charging on its lease
    await hass.async_block_till_done()
    assert manager.charger_status("cp2").allocated_a == pytest.approx(16)
    # After the lease the charger falls back to its safe share: the rest is cp2's.
    await _until(
        hass,
        lambda: manager.charger_status("cp2").allocated_a == pytest.approx(32 - share),
        "lease expiry",
    )
    await _unload(hass, entry)


async def test_virtual_circuit_across_two_panels(
    hass: HomeAssistant, sims: list[SimCharger]
) -> None:
    entry = await _hub(
        hass,
        [
            circuit_subentry("garage", max_current=32),
            circuit_subentry("carport", max_current=32),
            circuit_subentry(
                "fleet", kind="virtual", members=["cp1", "cp3"], max_current=None, max_power_kw=11
            ),
            charger_subentry("cp1", max_current=16, circuit="garage"),
            charger_subentry("cp2", max_current=16, circuit="garage"),
            charger_subentry("cp3", max_current=16, circuit="carport"),
        ],
    )
    cp1, cp2, cp3 = [await _start(sims, entry, f"cp{i}") for i in (1, 2, 3)]
    for sim in (cp1, cp2, cp3):
        await sim.plug_in()
    await _until(hass, lambda: cp2.current_a[0] == pytest.approx(16), "cp2 unconstrained")
    # 11 kW / (3 x 230 V) = 15.9 A per phase, shared by cp1 and cp3 across the panels.
    await _until(
        hass,
        lambda: sorted((cp1.current_a[0], cp3.current_a[0])) == pytest.approx([7.9, 8.0]),
        "fleet cap shared",
    )
    assert cp1.power_w + cp3.power_w <= 11_000
    status = entry.runtime_data.manager.charger_status("cp1")
    assert status.limiting_circuit == "fleet"
    await _unload(hass, entry)


async def test_priority_then_rotation(hass: HomeAssistant, sims: list[SimCharger]) -> None:
    # 10 A: room for one car at a time (6 A minimum each).
    entry = await _hub(
        hass,
        [
            circuit_subentry("main", max_current=10),
            *(charger_subentry(f"cp{i}", max_current=16, circuit="main") for i in (1, 2)),
        ],
        rotation_period_s=2,
        min_on_time_s=1,
    )
    cp1, cp2 = [await _start(sims, entry, f"cp{i}") for i in (1, 2)]
    manager = entry.runtime_data.manager
    await manager.async_set_priority("cp2", 5)
    await cp1.plug_in()
    await cp2.plug_in()
    # Priority: cp2 takes the 10 A; cp1 waits, whatever the rotation period.
    await _until(hass, lambda: cp2.current_a[0] == pytest.approx(10), "cp2 first")
    await _until(hass, lambda: cp1.current_a[0] == 0, "cp1 waits")
    assert manager.charger_status("cp1").reason is LimitReason.PAUSED_CAPACITY
    await asyncio.sleep(2.5)
    assert manager.charger_status("cp1").allocated_a == 0
    # Equal priority: the two take turns, so the waiting one charges too.
    await manager.async_set_priority("cp2", 0)
    energy_before = cp1.energy_wh
    seen_rotation: set[str] = set()

    def turns_taken() -> bool:
        for cid in ("cp1", "cp2"):
            if manager.charger_status(cid).reason is LimitReason.PAUSED_ROTATION:
                seen_rotation.add(cid)
        return cp1.energy_wh > energy_before and "cp2" in seen_rotation

    await _until(hass, turns_taken, "rotation")
    # Never both at once: the panel holds.
    assert cp1.current_a[0] + cp2.current_a[0] <= 10 + 1e-6
    # A paused mode holds the charger at 0 A whatever the capacity.
    await manager.async_set_mode("cp1", ChargeMode.PAUSED)
    assert manager.charger_status("cp1").reason is LimitReason.PAUSED_BY_USER
    await _until(hass, lambda: cp1.current_a[0] == 0, "paused by user")
    await _unload(hass, entry)


async def test_set_circuit_limit_with_duration_reverts(
    hass: HomeAssistant, sims: list[SimCharger]
) -> None:
    entry = await _hub(
        hass,
        [
            circuit_subentry("main", max_current=32),
            charger_subentry("cp1", max_current=32, circuit="main"),
        ],
    )
    sim = await _start(sims, entry, "cp1")
    await sim.plug_in()
    await _until(hass, lambda: sim.current_a[0] == pytest.approx(32), "full")
    await hass.services.async_call(
        DOMAIN,
        "set_circuit_limit",
        {"circuit": "main", "current": 10, "duration": {"seconds": 2}},
        blocking=True,
    )
    status = entry.runtime_data.manager.circuit_status("main")
    assert status.limit_a == 10
    assert status.override_until is not None
    await _until(hass, lambda: sim.current_a[0] == pytest.approx(10), "limited")
    response = await hass.services.async_call(
        DOMAIN, "get_allocation", {}, blocking=True, return_response=True
    )
    assert response["chargers"]["cp1"]["allocated_a"] == 10
    assert response["circuits"]["main"]["limit_a"] == 10
    # It reverts by itself (raises then wait for the hold before they go out).
    await _until(hass, lambda: status.limit_a == 32, "revert")
    assert entry.runtime_data.manager.charger_status("cp1").allocated_a == 32
    await _unload(hass, entry)


async def test_overload_event(hass: HomeAssistant, sims: list[SimCharger]) -> None:
    _set_house(hass, (10, 10, 10))
    entry = await _hub(
        hass,
        [
            circuit_subentry("main", max_current=25, meter="current", current_sensors=list(HOUSE)),
        ],
    )
    events = []
    hass.bus.async_listen(EVENT_OVERLOAD, events.append)
    _set_house(hass, (26, 10, 10))
    await hass.async_block_till_done()
    assert entry.runtime_data.manager.circuit_status("main").overload
    assert len(events) == 1
    assert events[0].data["circuit_id"] == "main"
    _set_house(hass, (12, 10, 10))
    await hass.async_block_till_done()
    assert not entry.runtime_data.manager.circuit_status("main").overload
    await _unload(hass, entry)


async def test_rejected_profile_raises_repair_and_holds_share(
    hass: HomeAssistant, sims: list[SimCharger]
) -> None:
    entry = await _hub(
        hass,
        [
            circuit_subentry("main", max_current=32),
            charger_subentry("cp1", max_current=16, circuit="main"),
            charger_subentry("cp2", max_current=32, circuit="main"),
        ],
    )
    stubborn = await _start(
        sims, entry, "cp1", reject_profiles=True, max_current_a=16, wait_ready=False
    )
    await stubborn.plug_in()
    await _until(
        hass,
        lambda: ir.async_get(hass).async_get_issue(DOMAIN, "charger_not_following_cp1") is not None,
        "repair issue",
    )
    manager = entry.runtime_data.manager
    # The issue can come from the safe default rejected at boot, before the session starts.
    await _until(
        hass,
        lambda: manager.charger_status("cp1").reason is LimitReason.NOT_FOLLOWING,
        "counted as not following while charging",
    )
    good = await _start(sims, entry, "cp2")
    await good.plug_in()
    # cp1 draws its hardware max (16 A) whatever we ask: cp2 gets the rest, not more.
    await _until(hass, lambda: stubborn.current_a[0] == pytest.approx(16), "stubborn draws")
    await _until(hass, lambda: good.current_a[0] == pytest.approx(16), "cp2 gets the rest")
    assert manager.charger_status("cp2").allocated_a <= 32 - 16
    await _unload(hass, entry)


async def test_ignored_profile_detected(hass: HomeAssistant, sims: list[SimCharger]) -> None:
    entry = await _hub(
        hass,
        [
            circuit_subentry("main", max_current=10),
            charger_subentry("cp1", max_current=32, circuit="main"),
        ],
    )
    sim = await _start(sims, entry, "cp1", ignore_profiles=True, wait_ready=False)
    await sim.plug_in()
    manager = entry.runtime_data.manager
    with patch("custom_components.ocpp_power.manager.REACTION_TIME_S", 1.0):
        await _until(
            hass,
            lambda: manager.charger_status("cp1").reason is LimitReason.NOT_FOLLOWING,
            "not following",
        )
    assert ir.async_get(hass).async_get_issue(DOMAIN, "charger_not_following_cp1") is not None
    await _unload(hass, entry)


async def test_restart_restores_settings_and_limits(
    hass: HomeAssistant, sims: list[SimCharger]
) -> None:
    # A fixed port: the chargers must find Home Assistant where it was.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    entry = await _hub(
        hass,
        [
            circuit_subentry("main", max_current=20),
            *(charger_subentry(f"cp{i}", max_current=16, circuit="main") for i in (1, 2)),
        ],
        port=port,
    )
    cp1, cp2 = [await _start(sims, entry, f"cp{i}") for i in (1, 2)]
    manager = entry.runtime_data.manager
    await manager.async_set_priority("cp1", 3)
    await manager.async_set_mode("cp2", ChargeMode.FASTEST)
    await manager.async_set_circuit_limit("main", current_a=18)
    await cp1.plug_in()
    await cp2.plug_in()
    await _until(hass, lambda: cp2.current_a[0] == pytest.approx(16), "fastest first")
    received = len(cp2.received_profiles)
    # cp2 comes back a few seconds after cp1: cp1 must not keep the capacity it got in
    # the meantime (its minimum on-time does not count while chargers reconnect).
    cp2.backoff_s = (2.5, 3.0)
    # Home Assistant goes away and comes back (an entry reload is the same for the hub).
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    manager = entry.runtime_data.manager
    assert manager.charger_status("cp1").priority == 3
    assert manager.charger_status("cp2").mode is ChargeMode.FASTEST
    assert manager.circuit_status("main").limit_a == 18
    # The chargers reconnect by themselves and are given their limits again.
    await _until(hass, lambda: cp1.connect_count >= 2 and cp2.connect_count >= 2, "reconnect")
    await _until(hass, lambda: len(cp2.received_profiles) > received + 1, "limits reinstalled")
    await _until(hass, lambda: manager.charger_status("cp2").allocated_a == 16, "allocation")
    assert manager.charger_status("cp1").allocated_a == 0  # 18 - 16 = 2 A < 6 A minimum
    await _unload(hass, entry)
