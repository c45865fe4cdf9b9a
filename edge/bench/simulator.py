"""A bench simulator: an OPC UA server that behaves like the test benches of the example families.

    async with BenchSimulator(port=4840, scenario="normal") as sim:
        await sim.start_test("HGP-000017")      # one test cycle, as the StartTest method does
        await sim.set_value("LeakRate", 2.5, status="Good")
        await sim.stop(); await sim.start()     # an outage, same port

Address space (namespace `urn:reman-edge:bench-sim`, string node ids under Objects/Bench):
Bench.State, Bench.PartPresent, Bench.CoreId, Bench.PartNumber, Bench.ResultReady, one variable per
measurement with an EngineeringUnits property, the method Bench.StartTest(core_id), and the nodes
a PLC would offer for the result: Bench.Disposition, Credit, Seq, Err, Revision (Int32),
Bench.ResultCoreId (String), Bench.DispositionReady (Boolean) and Bench.Ack (Int32; the PLC's
acknowledgement: with `auto_ack_s` set, the simulator writes Seq there that long after
DispositionReady turns true, as a PLC that took the result would).

`clock_offset_s` shifts the simulator's clock (source and server timestamps, and the server's
CurrentTime), for a bench whose clock is wrong: -60 is a clock a minute behind. A cycle: ResultReady and PartPresent false, then the core
id, part number and PartPresent true, State testing, the family's measurements, ResultReady true,
State done. Scenarios: normal (in spec), out_of_spec (beyond the families' limits), flaky (drops
client connections now and then, bad or uncertain status codes on some values).
"""

from __future__ import annotations

import asyncio
import logging
import random
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from asyncua import Server, ua
from asyncua.common.methods import uamethod
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager

from edge.bench.certs import make_certificate
from edge.bench.nodeids import node_id
from edge.contract.timefmt import UTC
from edge.errors import BenchError
from edge.ports import free_port

log = logging.getLogger("reman.benchsim")

NAMESPACE_URI = "urn:reman-edge:bench-sim"
PATH = "/reman/bench"
SCENARIOS = ("normal", "out_of_spec", "flaky")
SECURITY = ("None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt")
_UNECE = "http://www.opcfoundation.org/UA/units/un/cefact"


@dataclass(frozen=True)
class SimMeasurement:
    """One simulated measurement: its unit, UNECE code and values per scenario."""

    unit: str
    unece: str
    description: str
    family: str
    normal: float
    out_of_spec: float


MEASUREMENTS: dict[str, SimMeasurement] = {
    "LeakRate": SimMeasurement("ml/min", "41", "internal leakage at 200 bar", "HGP", 2.2, 12.0),
    "Flow": SimMeasurement("l/min", "L2", "flow at 1500 rpm and 200 bar", "HGP", 24.5, 15.0),
    "Current": SimMeasurement("A", "AMP", "running current at the rating point", "HPC", 9.8, 15.5),
    "DischargePressure": SimMeasurement(
        "bar", "BAR", "pump-up discharge pressure", "HPC", 22.0, 14.0
    ),
    "InsulationResistance": SimMeasurement(
        "MOhm", "B75", "insulation resistance at 500 V DC", "HPC", 50.0, 1.2
    ),
    "CapacityPct": SimMeasurement("%", "P1", "capacity share of rated", "BAT", 95.5, 82.0),
    "InternalResistance": SimMeasurement(
        "mOhm", "H44", "module DC internal resistance", "BAT", 16.0, 32.0
    ),
}
PART_NUMBERS = {"HGP": "HGP-2-22", "HPC": "HPC-SC-5K", "BAT": "BAT-48-2K2"}
_SIGNALS: dict[str, tuple[Any, ua.VariantType]] = {
    "State": ("idle", ua.VariantType.String),
    "PartPresent": (False, ua.VariantType.Boolean),
    "CoreId": ("", ua.VariantType.String),
    "PartNumber": ("", ua.VariantType.String),
    "ResultReady": (False, ua.VariantType.Boolean),
    "Disposition": (0, ua.VariantType.Int32),
    "Credit": (0, ua.VariantType.Int32),
    "Seq": (0, ua.VariantType.Int32),
    "Err": (0, ua.VariantType.Int32),
    "Revision": (0, ua.VariantType.Int32),
    "ResultCoreId": ("", ua.VariantType.String),
    "DispositionReady": (False, ua.VariantType.Boolean),
    "Ack": (0, ua.VariantType.Int32),
}
WRITABLE = ("Disposition", "Credit", "Seq", "Err", "Revision", "ResultCoreId", "DispositionReady")
CLOCK_TICK_S = 0.1
_FLAKY_STATUSES = ("BadSensorFailure", "UncertainLastUsableValue", "BadCommunicationError")


class _Users(UserManager):
    """Username/password check for the simulator (anonymous when no users are set)."""

    def __init__(self, users: dict[str, str]):
        self.users = users

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if not self.users or (username in self.users and self.users[username] == password):
            return User(role=UserRole.User)
        return None


class BenchSimulator:
    """An asyncua server with a simulated test bench; start/stop it for outage tests."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        scenario: str = "normal",
        cycle_s: float | None = None,
        security: tuple[str, ...] | list[str] = ("None",),
        users: dict[str, str] | None = None,
        cert_dir: str | Path | None = None,
        step_s: float = 0.1,
        seed: int | None = None,
        extra_namespaces: tuple[str, ...] = (),
        clock_offset_s: float = 0.0,
        auto_ack_s: float | None = None,
    ):
        if scenario not in SCENARIOS:
            raise BenchError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
        unknown = [s for s in security if s not in SECURITY]
        if unknown:
            raise BenchError(f"unknown security {unknown}; choose from {', '.join(SECURITY)}")
        self.host = host
        self.port = port or free_port(host)
        self.scenario = scenario
        self.cycle_s = cycle_s
        self.security = tuple(security)
        self.users = dict(users or {})
        self.step_s = step_s
        # Registered before ours, so the bench namespace's index moves (as between real servers).
        self.extra_namespaces = tuple(extra_namespaces)
        self.endpoint = f"opc.tcp://{host}:{self.port}{PATH}"
        self.namespace_uri = NAMESPACE_URI
        self.cycles = 0
        self.clock_offset_s = clock_offset_s
        self.auto_ack_s = auto_ack_s
        self.acks: list[int] = []  # seqs the simulated PLC acknowledged
        self._random = random.Random(seed)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._cert_dir = Path(cert_dir) if cert_dir else None
        self.server_certificate: Path | None = None
        self._server: Server | None = None
        self._nodes: dict[str, Any] = {}
        self._types: dict[str, ua.VariantType] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._auto: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BenchSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def running(self) -> bool:
        """True while the server listens."""
        return self._server is not None

    async def start(self) -> None:
        """Build the address space and listen (again, after stop(), on the same port)."""
        if self._server is not None:
            return
        server = await self._make_server()
        try:
            await server.start()
        except OSError as exc:
            raise BenchError(
                f"bench simulator cannot listen on {self.host}:{self.port}: {exc}"
            ) from exc
        self._server = server
        await _stop_clock(server)  # ours keeps CurrentTime, on the (possibly shifted) clock
        self._later(self._clock_loop(server))
        if self.auto_ack_s is not None:
            await self._watch_ready(server)
        if self.cycle_s and self._auto is None:
            self._auto = asyncio.create_task(self._auto_cycle(), name="bench-sim-cycle")

    async def stop(self) -> None:
        """Stop listening and drop every client (the address space goes with it)."""
        server, self._server = self._server, None
        for task in list(self._tasks):
            task.cancel()
        if server is not None:
            await _stop_clock(server)
            await server.stop()
        self._nodes = {}

    async def close(self) -> None:
        """Stop, end the automatic cycle and remove temporary certificates."""
        if self._auto is not None:
            self._auto.cancel()
            await asyncio.gather(self._auto, return_exceptions=True)
            self._auto = None
        await self.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # ------------------------------------------------------------ values

    async def set_value(
        self, name: str, value: Any, status: str | int = "Good", source_ts: datetime | None = None
    ) -> None:
        """Write a bench variable server-side, with a status code and source timestamp
        (now by default). `name` is e.g. LeakRate or Bench.LeakRate."""
        key = name.removeprefix("Bench.")
        node = self._node(key)
        code = getattr(ua.StatusCodes, status) if isinstance(status, str) else status
        now = self.now()
        variant = ua.Variant(value, self._types[key]) if value is not None else ua.Variant()
        await node.write_value(_data_value(variant, code, source_ts or now, now))

    def now(self) -> datetime:
        """The simulated bench's clock: the machine's, shifted by clock_offset_s."""
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset_s)

    async def _clock_loop(self, server: Server) -> None:
        node = server.get_node(node_id(ua.ObjectIds.Server_ServerStatus_CurrentTime))
        while True:
            await node.write_value(ua.Variant(self.now(), ua.VariantType.DateTime))
            await asyncio.sleep(CLOCK_TICK_S)

    async def _watch_ready(self, server: Server) -> None:
        sub = await server.create_subscription(20, _ReadyHandler(self))
        await sub.subscribe_data_change(self._nodes["DispositionReady"])

    async def acknowledge_later(self) -> None:
        """As a PLC that took the result: after auto_ack_s, write Seq to Ack."""
        await asyncio.sleep(self.auto_ack_s or 0.0)
        seq = await self.get_value("Seq")
        self.acks.append(seq)
        await self.set_value("Ack", seq)

    async def reset(self) -> None:
        """Every variable back to its start value (the scenario's, Good, stamped now)."""
        for key, (value, _) in _SIGNALS.items():
            await self.set_value(key, value)
        for key, spec in MEASUREMENTS.items():
            await self.set_value(
                key, spec.out_of_spec if self.scenario == "out_of_spec" else spec.normal
            )

    async def get_value(self, name: str) -> Any:
        """A bench variable's value now (e.g. a write-back node a client wrote)."""
        return await self._node(name.removeprefix("Bench.")).read_value()

    def drop_connections(self) -> int:
        """Close every client connection (the server keeps listening); how many were closed."""
        if self._server is None:
            return 0
        transports = list(self._server.iserver.asyncio_transports)
        for transport in transports:
            transport.close()
        return len(transports)

    async def start_test(self, core_id: str) -> None:
        """Run one test cycle for `core_id` and return when ResultReady is true."""
        async with self._lock:
            await self._cycle(core_id)

    def _node(self, key: str) -> Any:
        if key not in self._nodes:
            raise BenchError(f"bench simulator has no variable {key!r} (running: {self.running})")
        return self._nodes[key]

    # ------------------------------------------------------------ the cycle

    async def _cycle(self, core_id: str) -> None:
        family = core_id.split("-", 1)[0].upper()
        family = family if family in PART_NUMBERS else "HGP"
        await self.set_value("ResultReady", False)
        await self.set_value("PartPresent", False)
        await asyncio.sleep(self.step_s)
        for key, value in (
            ("CoreId", core_id),
            ("PartNumber", PART_NUMBERS[family]),
            ("State", "testing"),
            ("PartPresent", True),
        ):
            await self.set_value(key, value)
        await asyncio.sleep(self.step_s)
        for key, value, status in self._results(family):
            await self.set_value(key, value, status=status)
        await self.set_value("State", "done")
        await self.set_value("ResultReady", True)
        self.cycles += 1
        if self.scenario == "flaky" and self._random.random() < 0.3:
            self._later(self._drop_soon())

    def _results(self, family: str) -> list[tuple[str, Any, str]]:
        out = []
        for key, spec in MEASUREMENTS.items():
            if spec.family != family:
                continue
            base = spec.out_of_spec if self.scenario == "out_of_spec" else spec.normal
            value: float | None = round(base * self._random.uniform(0.97, 1.03), 3)
            status = "Good"
            if self.scenario == "flaky" and self._random.random() < 0.25:
                status = self._random.choice(_FLAKY_STATUSES)
                value = value if status.startswith("Uncertain") else None
            out.append((key, value, status))
        return out

    async def _drop_soon(self) -> None:
        await asyncio.sleep(self.step_s)
        log.info("flaky bench: dropped %d client connections", self.drop_connections())

    async def _auto_cycle(self) -> None:
        families = list(PART_NUMBERS)
        while True:
            await asyncio.sleep(self.cycle_s or 1.0)
            if self._server is None:
                continue
            family = families[self.cycles % len(families)]
            try:
                await self.start_test(f"{family}-{self.cycles + 1:06d}")
            except BenchError:  # stopped mid-cycle for an outage
                log.info("bench simulator cycle interrupted")

    def _later(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ the server

    async def _make_server(self) -> Server:
        server = Server(user_manager=_Users(self.users))
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("reman-edge bench simulator")
        await server.set_application_uri("urn:reman-edge:bench-sim:server")
        server.set_security_policy(
            [getattr(ua.SecurityPolicyType, _policy_name(s)) for s in self.security]
        )
        if self.users:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        if self.security != ("None",):
            await self._load_certificate(server)
        for uri in self.extra_namespaces:
            await server.register_namespace(uri)
        idx = await server.register_namespace(NAMESPACE_URI)
        await self._build(server, idx)
        return server

    async def _load_certificate(self, server: Server) -> None:
        if self._cert_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="reman-bench-sim-")
            self._cert_dir = Path(self._tmp.name)
        cert = self._cert_dir / "server-cert.der"
        key = self._cert_dir / "server-key.pem"
        if not cert.exists():
            make_certificate(
                cert, key, uri="urn:reman-edge:bench-sim:server", host=self.host, server=True
            )
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        self.server_certificate = cert

    async def _build(self, server: Server, idx: int) -> None:
        bench = await server.nodes.objects.add_object(
            node_id("Bench", idx), ua.QualifiedName("Bench", idx)
        )
        for key, (value, vtype) in _SIGNALS.items():
            self._nodes[key] = await bench.add_variable(
                node_id(f"Bench.{key}", idx), ua.QualifiedName(key, idx), ua.Variant(value, vtype)
            )
            self._types[key] = vtype
        for key in WRITABLE:
            await self._nodes[key].set_writable()
        for key, spec in MEASUREMENTS.items():
            self._nodes[key] = await self._add_measurement(bench, idx, key, spec)
            self._types[key] = ua.VariantType.Double
        core_id = ua.Argument(
            Name="core_id",
            DataType=node_id(ua.ObjectIds.String),
            ValueRank=-1,
            Description=ua.LocalizedText("Core id of the part to test"),
        )
        started = ua.Argument(
            Name="started",
            DataType=node_id(ua.ObjectIds.Boolean),
            ValueRank=-1,
            Description=ua.LocalizedText("True when the cycle started"),
        )
        await bench.add_method(
            node_id("Bench.StartTest", idx),
            ua.QualifiedName("StartTest", idx),
            self._start_test_method,
            [core_id],
            [started],
        )

    async def _add_measurement(self, bench: Any, idx: int, key: str, spec: SimMeasurement) -> Any:
        value = spec.out_of_spec if self.scenario == "out_of_spec" else spec.normal
        var = await bench.add_variable(
            node_id(f"Bench.{key}", idx),
            ua.QualifiedName(key, idx),
            ua.Variant(value, ua.VariantType.Double),
        )
        eu = ua.EUInformation(
            NamespaceUri=_UNECE,
            UnitId=_unit_id(spec.unece),
            DisplayName=ua.LocalizedText(spec.unit),
            Description=ua.LocalizedText(spec.description),
        )
        await var.add_property(
            node_id(f"Bench.{key}.EngineeringUnits", idx),
            "EngineeringUnits",
            eu,
            datatype=node_id(ua.ObjectIds.EUInformation),
        )
        return var

    @uamethod
    async def _start_test_method(self, parent: Any, core_id: str) -> bool:
        # A method call returns at once; the cycle runs on (as a real bench's would).
        self._later(self.start_test(core_id or "HGP-000000"))
        return True


class _ReadyHandler:
    """The simulator's own subscription to DispositionReady (asyncua's handler interface)."""

    def __init__(self, sim: BenchSimulator):
        self.sim = sim

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        if val is True:
            self.sim._later(self.sim.acknowledge_later())


async def _stop_clock(server: Server) -> None:
    """End asyncua's once-a-second clock task now; stop() would wait up to a second for it."""
    iserver = server.iserver
    task = getattr(iserver, "time_task", None)
    if task is None:
        return
    iserver._time_task_stop = True  # asyncua's own flag; the task checks it after its sleep
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    iserver.time_task = None


def _data_value(variant: ua.Variant, code: int, source_ts: datetime, now: datetime) -> ua.DataValue:
    """A DataValue; asyncua annotates its fields with ua.UInt32 and ua.DateTime, and takes plain
    ints and datetimes (the casts only tell the type checker so)."""
    return ua.DataValue(
        variant,
        ua.StatusCode(cast(ua.UInt32, code)),
        SourceTimestamp=cast(ua.DateTime, source_ts),
        ServerTimestamp=cast(ua.DateTime, now),
    )


def _policy_name(security: str) -> str:
    return "NoSecurity" if security == "None" else security


def _unit_id(code: str) -> int:
    """The UNECE code as OPC UA's UnitId (OPC 10000-8, 5.6.3)."""
    unit_id = 0
    for char in code:
        unit_id = (unit_id << 8) | ord(char)
    return unit_id
