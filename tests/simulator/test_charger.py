"""End-to-end tests: simulated chargers against a tiny central system over real websockets."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
import time
from typing import Any

from ocpp.exceptions import NotImplementedError as OcppNotImplementedError
from ocpp.v16 import call
import pytest

from simulator.charger import SimCharger
from simulator.ev import EV

from .conftest import FakeCentralSystem

type Factory = Callable[..., SimCharger]


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tx_default(
    profile_id: int,
    limit: float,
    *,
    stack_level: int = 0,
    purpose: str = "TxDefaultProfile",
    unit: str = "A",
    **extra: Any,
) -> dict[str, Any]:
    """An Absolute profile that started a minute ago, as the component sends them."""
    return {
        "chargingProfileId": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": unit,
            "startSchedule": iso(datetime.now(UTC) - timedelta(minutes=1)),
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
        },
        **extra,
    }


def statuses(csms: FakeCentralSystem, connector_id: int = 1) -> list[str]:
    return [p["status"] for p in csms.of("StatusNotification") if p["connector_id"] == connector_id]


def sampled(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return payload["meter_value"][0]["sampled_value"]


async def set_profile(
    csms: FakeCentralSystem, charger_id: str, profile: dict[str, Any], connector_id: int = 1
) -> str:
    result = await csms.charge_points[charger_id].call(
        call.SetChargingProfile(connector_id=connector_id, cs_charging_profiles=profile)
    )
    return result.status


async def test_boot_session_meter_values_and_basic_auth(
    csms: FakeCentralSystem, make_charger: Factory
) -> None:
    csms.password = "a-long-secret"
    cp = make_charger("cp1", csms.url, password="a-long-secret", ev=EV(soc=0.5))
    await cp.start()
    assert cp.connected
    assert cp.boot_status == "Accepted"
    expected = base64.b64encode(b"cp1:a-long-secret").decode()
    assert csms.auth_headers == [f"Basic {expected}"]
    assert csms.subprotocols == ["ocpp1.6"]
    boot = csms.of("BootNotification")[0]
    assert (boot["charge_point_vendor"], boot["charge_point_model"]) == (
        "OCPPPowerSim",
        "SimWallbox",
    )
    await csms.wait_for(lambda: len(csms.of("StatusNotification")) >= 2)
    assert statuses(csms, 0) == ["Available"]
    assert statuses(csms) == ["Available"]

    tx = await cp.plug_in()
    assert tx == 101
    assert cp.transaction_id == tx
    actions = [a for _, a, _ in csms.messages if a not in ("MeterValues", "Heartbeat")]
    assert actions[-4:] == [
        "StatusNotification",
        "Authorize",
        "StartTransaction",
        "StatusNotification",
    ]
    assert statuses(csms)[-2:] == ["Preparing", "Charging"]
    assert csms.of("StartTransaction")[0]["id_tag"] == "SIMTAG"
    assert cp.current_a == [16.0, 16.0, 16.0]  # the car's maximum, under the charger's 32 A
    assert cp.power_w == pytest.approx(16 * 3 * 230)
    assert cp.limit_a is None

    await csms.wait_for(lambda: any(p.get("transaction_id") == tx for p in csms.of("MeterValues")))
    values = sampled(next(p for p in csms.of("MeterValues") if p.get("transaction_id") == tx))
    currents = {v["phase"]: v["value"] for v in values if v["measurand"] == "Current.Import"}
    assert currents == {"L1": "16.0", "L2": "16.0", "L3": "16.0"}
    assert {v["measurand"] for v in values} == {
        "Current.Import",
        "Current.Offered",
        "Power.Active.Import",
        "Energy.Active.Import.Register",
        "Voltage",
        "SoC",
    }
    assert {v["context"] for v in values} == {"Sample.Periodic"}
    assert next(v for v in values if v["measurand"] == "SoC")["value"] == "50"

    await cp.wait_for(lambda c: c.energy_wh > 1)
    await cp.unplug()
    stop = csms.of("StopTransaction")[0]
    assert stop["transaction_id"] == tx
    assert stop["reason"] == "EVDisconnected"
    assert stop["meter_stop"] == int(cp.energy_wh)
    assert statuses(csms)[-2:] == ["Finishing", "Available"]
    assert cp.current_a == [0.0, 0.0, 0.0]
    assert cp.transaction_id is None


async def test_profile_takes_effect_after_reaction_delay_and_lease_falls_back(
    csms: FakeCentralSystem, make_charger: Factory
) -> None:
    cp = make_charger("cp2", csms.url, reaction_delay_s=0.3, ev=EV(max_current_a=32))
    await cp.start()
    await cp.plug_in()
    assert cp.current_a[0] == 32

    sent = time.monotonic()
    assert await set_profile(csms, "cp2", tx_default(1, 10)) == "Accepted"
    await cp.step()
    assert cp.current_a[0] == 32  # the charger has not reacted yet
    await cp.wait_for(lambda c: c.current_a[0] == 10, timeout=3)
    assert time.monotonic() - sent >= 0.3
    assert cp.limit_a == 10
    assert cp.status == "Charging"

    # A dynamic setpoint above the safe default, leased for one second.
    lease_end = datetime.now(UTC) + timedelta(seconds=1)
    lease = tx_default(2, 16, stack_level=1, validTo=iso(lease_end))
    assert await set_profile(csms, "cp2", lease) == "Accepted"
    await cp.wait_for(lambda c: c.current_a[0] == 16, timeout=3)
    await cp.wait_for(lambda c: c.current_a[0] == 10, timeout=4)
    assert datetime.now(UTC) >= lease_end + timedelta(seconds=0.3)
    assert [p["csChargingProfiles"]["chargingProfileId"] for _, p in cp.received_profiles] == [1, 2]
    assert cp.received_profiles[0][1]["connectorId"] == 1
    assert cp.received_profiles[0][0] <= cp.received_profiles[1][0]

    # The central system sees the reduced draw in MeterValues.
    def reported_10a() -> bool:
        return any(
            v["measurand"] == "Current.Import" and v["value"] == "10.0"
            for p in csms.of("MeterValues")
            for v in sampled(p)
        )

    await csms.wait_for(reported_10a)


async def test_charge_point_max_in_watts_and_minimum_current(
    csms: FakeCentralSystem, make_charger: Factory
) -> None:
    cp = make_charger("cp3", csms.url, reaction_delay_s=0.0, ev=EV(max_current_a=32))
    await cp.start()
    await cp.plug_in()
    cap = tx_default(9, 6900, purpose="ChargePointMaxProfile", unit="W")
    assert await set_profile(csms, "cp3", cap, connector_id=0) == "Accepted"
    await cp.wait_for(lambda c: c.current_a[0] == pytest.approx(10))

    assert await set_profile(csms, "cp3", tx_default(1, 5)) == "Accepted"
    await cp.wait_for(lambda c: c.status == "SuspendedEVSE")
    assert cp.current_a == [0.0, 0.0, 0.0]
    assert cp.offered_a == 0
    await csms.wait_for(lambda: statuses(csms)[-1] == "SuspendedEVSE")

    clear = await csms.charge_points["cp3"].call(call.ClearChargingProfile(id=1))
    assert clear.status == "Accepted"
    await cp.wait_for(lambda c: c.status == "Charging")
    assert cp.current_a[0] == pytest.approx(10)
    unknown = await csms.charge_points["cp3"].call(call.ClearChargingProfile(id=77))
    assert unknown.status == "Unknown"

    composite = await csms.charge_points["cp3"].call(
        call.GetCompositeSchedule(connector_id=1, duration=600, charging_rate_unit="A")
    )
    assert composite.status == "Accepted"
    assert composite.charging_schedule["charging_schedule_period"] == [
        {"start_period": 0, "limit": 10.0}
    ]


async def test_reconnects_after_server_restart_and_queues_stop(
    csms: FakeCentralSystem, make_charger: Factory
) -> None:
    cp = make_charger("cp4", csms.url)
    await cp.start()
    tx = await cp.plug_in()
    await csms.stop()
    await cp.wait_for(lambda c: not c.connected)
    energy = cp.energy_wh
    await cp.wait_for(lambda c: c.energy_wh > energy)  # charging goes on while offline
    assert cp.status == "Charging"

    seen = len(csms.messages)
    await csms.start()
    await cp.wait_for(lambda c: c.connected and c.boot_status == "Accepted", timeout=5)
    assert cp.connect_count == 2
    await csms.wait_for(
        lambda: any(
            a == "MeterValues" and p.get("transaction_id") == tx for _, a, p in csms.messages[seen:]
        )
    )

    # A transaction that ends while offline is reported once the server is back.
    await csms.stop()
    await cp.wait_for(lambda c: not c.connected)
    await cp.unplug()
    assert csms.of("StopTransaction") == []
    await csms.start()
    await csms.wait_for(lambda: len(csms.of("StopTransaction")) == 1, within=5)
    assert csms.of("StopTransaction")[0]["transaction_id"] == tx
    await csms.wait_for(lambda: statuses(csms)[-1] == "Available")


async def test_start_fails_cleanly_without_server(
    make_charger: Factory, socket_enabled: None
) -> None:
    cp = make_charger("cp5", "ws://127.0.0.1:9", reconnect=False)
    with pytest.raises(ConnectionError):
        await cp.start(timeout=5)
    assert not cp.connected
    assert cp.last_error is not None


async def test_wrong_password_is_refused_and_retried(
    csms: FakeCentralSystem, make_charger: Factory
) -> None:
    csms.password = "right-password"
    cp = make_charger("cp6", csms.url, password="wrong-password")
    await cp.start(wait=False)
    await csms.wait_for(lambda: len(csms.auth_headers) >= 2)  # it backs off and tries again
    assert not cp.connected
    assert "401" in (cp.last_error or "")


async def test_configuration_trigger_and_data_transfer(
    csms: FakeCentralSystem, make_charger: Factory
) -> None:
    cp = make_charger("cp7", csms.url, rate_units=("A",))
    await cp.start()
    link = csms.charge_points["cp7"]
    config = await link.call(call.GetConfiguration())
    values = {k["key"]: k["value"] for k in config.configuration_key}
    assert values["SupportedFeatureProfiles"] == (
        "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger"
    )
    assert values["ChargingScheduleAllowedChargingRateUnit"] == "Current"
    assert values["ChargeProfileMaxStackLevel"] == "8"
    assert values["ChargingScheduleMaxPeriods"] == "24"
    assert values["NumberOfConnectors"] == "1"
    assert values["HeartbeatInterval"] == "60"  # from the boot answer
    some = await link.call(call.GetConfiguration(key=["NumberOfConnectors", "Nope"]))
    assert [k["key"] for k in some.configuration_key] == ["NumberOfConnectors"]
    assert some.unknown_key == ["Nope"]

    change = await link.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value="30"))
    assert change.status == "Accepted"
    assert cp.meter_interval_s == 30
    measurands = call.ChangeConfiguration(
        key="MeterValuesSampledData", value="Energy.Active.Import.Register,Current.Import"
    )
    assert (await link.call(measurands)).status == "Accepted"
    bad = call.ChangeConfiguration(key="MeterValuesSampledData", value="Temperature")
    assert (await link.call(bad)).status == "Rejected"
    readonly = call.ChangeConfiguration(key="NumberOfConnectors", value="2")
    assert (await link.call(readonly)).status == "Rejected"
    unknown = call.ChangeConfiguration(key="FreeBeer", value="true")
    assert (await link.call(unknown)).status == "NotSupported"

    trigger = await link.call(call.TriggerMessage(requested_message="MeterValues"))
    assert trigger.status == "Accepted"
    await csms.wait_for(lambda: len(csms.of("MeterValues")) >= 1)
    values_sent = sampled(csms.of("MeterValues")[-1])
    assert {v["measurand"] for v in values_sent} == {
        "Energy.Active.Import.Register",
        "Current.Import",
    }
    assert {v["context"] for v in values_sent} == {"Trigger"}
    for message in ("Heartbeat", "StatusNotification", "BootNotification"):
        result = await link.call(call.TriggerMessage(requested_message=message))
        assert result.status == "Accepted"
    await csms.wait_for(lambda: len(csms.of("BootNotification")) == 2 and csms.of("Heartbeat"))
    nope = await link.call(call.TriggerMessage(requested_message="DiagnosticsStatusNotification"))
    assert nope.status == "NotImplemented"

    data = await link.call(call.DataTransfer(vendor_id="acme"))
    assert data.status == "UnknownVendorId"
    watts = tx_default(1, 7000, unit="W")
    assert await set_profile(csms, "cp7", watts) == "Rejected"  # only A allowed here
    tx_profile = tx_default(2, 10, purpose="TxProfile")
    assert await set_profile(csms, "cp7", tx_profile) == "Rejected"  # no transaction
    assert cp.received_calls[:2] == ["GetConfiguration", "GetConfiguration"]


async def test_remote_start_with_profile_and_remote_stop(
    csms: FakeCentralSystem, make_charger: Factory
) -> None:
    cp = make_charger("cp8", csms.url, reaction_delay_s=0.0)
    await cp.start()
    link = csms.charge_points["cp8"]
    profile = tx_default(5, 8, purpose="TxProfile")
    start = await link.call(call.RemoteStartTransaction(id_tag="REMOTE", charging_profile=profile))
    assert start.status == "Accepted"
    await cp.wait_for(lambda c: c.transaction_id is not None and c.current_a[0] == 8)
    assert csms.of("Authorize") == []
    assert csms.of("StartTransaction")[0]["id_tag"] == "REMOTE"
    again = await link.call(call.RemoteStartTransaction(id_tag="REMOTE"))
    assert again.status == "Rejected"  # already charging

    wrong = await link.call(call.RemoteStopTransaction(transaction_id=999))
    assert wrong.status == "Rejected"
    tx = cp.transaction_id
    assert tx is not None
    stop = await link.call(call.RemoteStopTransaction(transaction_id=tx))
    assert stop.status == "Accepted"
    await csms.wait_for(lambda: len(csms.of("StopTransaction")) == 1)
    assert csms.of("StopTransaction")[0]["reason"] == "Remote"
    await cp.wait_for(lambda c: c.status == "Finishing")
    assert cp.profiles.profiles() == []  # the TxProfile ended with its transaction
    assert cp.current_a == [0.0, 0.0, 0.0]


async def test_availability_unlock_and_reset(
    csms: FakeCentralSystem, make_charger: Factory
) -> None:
    cp = make_charger("cp9", csms.url)
    await cp.start()
    await cp.plug_in()
    link = csms.charge_points["cp9"]

    result = await link.call(call.ChangeAvailability(connector_id=0, type="Inoperative"))
    assert result.status == "Accepted"
    await cp.wait_for(lambda c: c.status == "Unavailable" and c.transaction_id is None)
    assert cp.current_a == [0.0, 0.0, 0.0]
    await csms.wait_for(lambda: statuses(csms, 0)[-1] == "Unavailable")
    result = await link.call(call.ChangeAvailability(connector_id=0, type="Operative"))
    assert result.status == "Accepted"
    await cp.wait_for(lambda c: c.status == "Charging")  # the plugged car starts again
    assert len(csms.of("StartTransaction")) == 2

    reset = await link.call(call.Reset(type="Soft"))
    assert reset.status == "Accepted"
    await cp.wait_for(lambda c: c.connect_count == 2 and c.status == "Charging", timeout=5)
    assert csms.of("StopTransaction")[-1]["reason"] == "SoftReset"
    assert len(csms.of("BootNotification")) == 2

    unlock = await csms.charge_points["cp9"].call(call.UnlockConnector(connector_id=1))
    assert unlock.status == "Unlocked"
    await cp.wait_for(lambda c: c.status == "Available" and not c.ev_plugged)
    assert csms.of("StopTransaction")[-1]["reason"] == "UnlockCommand"


async def test_rejected_id_tag_stays_preparing(
    csms: FakeCentralSystem, make_charger: Factory
) -> None:
    csms.accepted_tags = set()
    cp = make_charger("cp10", csms.url)
    await cp.start()
    assert await cp.plug_in() is None
    assert cp.status == "Preparing"
    assert csms.of("StartTransaction") == []


async def test_full_car_suspends_itself(csms: FakeCentralSystem, make_charger: Factory) -> None:
    cp = make_charger("cp11", csms.url, ev=EV(battery_kwh=0.01, soc=0.999))
    await cp.start()
    await cp.plug_in()
    await cp.wait_for(lambda c: c.status == "SuspendedEV")
    assert cp.ev.full
    assert cp.current_a == [0.0, 0.0, 0.0]
    assert cp.transaction_id is not None


async def test_profile_failure_modes(csms: FakeCentralSystem, make_charger: Factory) -> None:
    rejecting = make_charger("rej", csms.url, reject_profiles=True)
    ignoring = make_charger(
        "ign", csms.url, ignore_profiles=True, reaction_delay_s=0.0, ev=EV(max_current_a=32)
    )
    dumb = make_charger("dumb", csms.url, supports_smart_charging=False)
    await asyncio.gather(rejecting.start(), ignoring.start(), dumb.start())
    assert await set_profile(csms, "rej", tx_default(1, 10)) == "Rejected"
    assert len(rejecting.received_profiles) == 1

    await ignoring.plug_in()
    assert await set_profile(csms, "ign", tx_default(1, 10)) == "Accepted"
    await ignoring.step()
    assert ignoring.current_a[0] == 32
    assert ignoring.limit_a is None

    request = call.SetChargingProfile(connector_id=1, cs_charging_profiles=tx_default(1, 10))
    with pytest.raises(OcppNotImplementedError):
        await csms.charge_points["dumb"].call(request, suppress=False)
    config = await csms.charge_points["dumb"].call(call.GetConfiguration())
    keys = {k["key"]: k["value"] for k in config.configuration_key}
    assert "SmartCharging" not in keys["SupportedFeatureProfiles"]
    assert "ChargingScheduleAllowedChargingRateUnit" not in keys


async def test_boot_pending_is_retried(csms: FakeCentralSystem, make_charger: Factory) -> None:
    csms.boot_statuses = ["Pending"]
    csms.boot_interval = 1
    cp = make_charger("cp12", csms.url)
    await cp.start(wait=False)
    await cp.wait_for(lambda c: c.boot_status == "Pending")
    await cp.wait_for(lambda c: c.boot_status == "Accepted", timeout=3)
    assert len(csms.of("BootNotification")) == 2
    await csms.wait_for(lambda: len(csms.of("Heartbeat")) >= 1, within=3)


async def test_stop_leaves_no_tasks(csms: FakeCentralSystem, make_charger: Factory) -> None:
    before = asyncio.all_tasks()
    cp = make_charger("cp13", csms.url)
    await cp.start()
    await cp.plug_in()
    await cp.stop()
    assert asyncio.all_tasks() - before == set()
    assert not cp.connected


async def test_single_phase_charger_converts_watts_on_one_phase(
    csms: FakeCentralSystem, make_charger: Factory
) -> None:
    cp = make_charger("cp14", csms.url, phases=1, reaction_delay_s=0.0, ev=EV(max_current_a=32))
    await cp.start()
    await cp.plug_in()
    assert await set_profile(csms, "cp14", tx_default(1, 3680, unit="W")) == "Accepted"
    await cp.wait_for(lambda c: c.current_a == [16.0, 0.0, 0.0])
    assert cp.power_w == pytest.approx(3680)
    await csms.charge_points["cp14"].call(call.TriggerMessage(requested_message="MeterValues"))
    await csms.wait_for(
        lambda: any(sampled(p)[0]["context"] == "Trigger" for p in csms.of("MeterValues"))
    )
    values = sampled(csms.of("MeterValues")[-1])
    phases = {v.get("phase") for v in values if v["measurand"] in ("Current.Import", "Voltage")}
    assert phases == {"L1", "L1-N"}
