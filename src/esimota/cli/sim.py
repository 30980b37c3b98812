"""`esimota sim device` and `esimota sim fleet`: simulated devices against a running platform (DESIGN §7)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
from pathlib import Path

from ..errors import InvalidArgument
from ..metrics import close_reason_name
from .common import emit

FAULTS = ("drop_at_frame", "bad_mac", "replay_counter", "chip_fault", "no_comm", "latency", "corrupt_readback")


def _default_port() -> int:
    """The platform's BIP port as `serve` takes it: ESIMOTA_BIP_PORT, else 7700."""
    from ..config import Settings

    return Settings().bip_port


def _add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="the platform's BIP endpoint")
    p.add_argument("--port", type=int, default=None, help="its port (default ESIMOTA_BIP_PORT, else 7700)")
    p.add_argument("--buffer", type=int, default=1024, help="the card's BIP buffer size (bytes)")
    p.add_argument("--json", action="store_true", help="print JSON (default: readable text)")


def _add_faults(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("faults")
    g.add_argument("--drop-at-frame", type=int, default=0, help="cut the channel after the k-th platform frame")
    g.add_argument("--bad-mac", action="store_true")
    g.add_argument("--replay-counter", action="store_true")
    g.add_argument("--chip-fault", action="store_true", help="UPDATEs answer 6581")
    g.add_argument("--no-comm", type=int, default=0, help="the first k REPORTs say 01")
    g.add_argument("--latency", type=float, default=0.0, help="seconds before each frame (slow network)")
    g.add_argument("--corrupt-readback", action="store_true")


def _faults(args):
    from ..sim.device import Faults

    return Faults(**{name: getattr(args, name) for name in FAULTS})


def _device(args) -> int:
    from ..codec.keys import derive_keys
    from ..domain import identifiers
    from ..sim.device import Device, DeviceSpec

    eid = identifiers.validate_eid(args.eid)
    try:
        master = bytes.fromhex(Path(args.master_key_file).read_text().strip())
    except (OSError, ValueError):
        raise InvalidArgument(f"cannot read a hex key from {args.master_key_file}", reason="MASTER_KEY_INVALID")
    if len(master) != 16:
        raise InvalidArgument("a batch master key is 32 hex digits", reason="MASTER_KEY_INVALID")
    kic, kid, dek = derive_keys(master, bytes.fromhex(eid))
    spec = DeviceSpec(eid, identifiers.validate_iccid(args.iccid), args.imei, kic, kid, dek,
                      buffer_size=args.buffer, counter=args.counter, faults=_faults(args))
    out = asyncio.run(Device(spec, args.host, args.port or _default_port()).run())
    payload = dataclasses.asdict(out)
    payload["seconds"] = round(payload["seconds"], 3)
    if out.close_reason is not None:  # DESIGN §5.1 by name, beside the code
        payload["close_reason_name"] = close_reason_name(out.close_reason)
    emit(args, payload)
    return 0 if out.ok else 1


def _fleet(args) -> int:
    from ..sim.fleet import FleetOptions, run_fleet, summarise
    from .. import runtime

    async def prepare():
        from ..service import writing
        from ..store import clients as client_store
        from ..sim import fleetdata

        pool = await runtime.open_pool(max_size=8)
        try:
            rnd = random.Random(args.seed)

            def faults(i):
                return _faults(args) if rnd.random() < args.fault_share else fleetdata.Faults()

            fleet = await fleetdata.generate(pool, args.count, seed=args.seed, buffer_size=args.buffer,
                                             faults=faults, province=args.province)
            client = await client_store.get(pool, fleet.client_id)
            for d in fleet.devices:
                await writing.apply_write(pool, client, writing.ApplyRequest(d.eid, writing.AUTO, args.province))
            return fleet
        finally:
            await pool.close()

    fleet = asyncio.run(prepare())
    opt = FleetOptions(host=args.host, port=args.port or _default_port(), procs=args.procs, concurrency=args.concurrency,
                       ramp_per_s=args.ramp, sources=args.sources)
    outcomes, seconds, _ = run_fleet(fleet.devices, opt)
    emit(args, summarise(outcomes, seconds))
    return 0


def register(sub) -> None:
    sim = sub.add_parser("sim", help="simulated devices: one device, or a fleet")
    ssub = sim.add_subparsers(dest="sim_command", metavar="WHAT")
    ssub.required = True
    dev = ssub.add_parser("device", help="power one simulated device on and report what happened")
    dev.add_argument("--eid", required=True)
    dev.add_argument("--iccid", required=True, help="the temporary ICCID in the card")
    dev.add_argument("--imei", default=None)
    dev.add_argument("--master-key-file", required=True, help="the batch master key (32 hex digits)")
    dev.add_argument("--counter", type=int, default=0, help="the card's last HELLO/REPORT counter")
    _add_target(dev)
    _add_faults(dev)
    dev.set_defaults(func=_device)
    fl = ssub.add_parser("fleet", help="generate N chips and numbers, apply for each, power them all on")
    fl.add_argument("--count", type=int, required=True)
    fl.add_argument("--province", default="44")
    fl.add_argument("--seed", type=int, default=1, choices=range(100), metavar="0-99",
                    help="identifier space of the generated fleet (one per fleet in a database)")
    fl.add_argument("--procs", type=int, default=2)
    fl.add_argument("--concurrency", type=int, default=2000)
    fl.add_argument("--ramp", type=float, default=0.0, help="power-ons per second (0: all at once)")
    fl.add_argument("--sources", type=int, default=8)
    fl.add_argument("--fault-share", type=float, default=0.0, help="share of devices given the faults below")
    _add_target(fl)
    _add_faults(fl)
    fl.set_defaults(func=_fleet)
