"""The API's methods read from the proto descriptors: routes, permissions and clauses (DESIGN §6)."""

from __future__ import annotations

from dataclasses import dataclass

from google.api import annotations_pb2
from google.protobuf import message_factory

from ..v1 import admin_pb2, auth_pb2, ingest_pb2, options_pb2, queries_pb2, writing_pb2

FILES = (auth_pb2, writing_pb2, queries_pb2, ingest_pb2, admin_pb2)


@dataclass(frozen=True)
class Method:
    """One rpc: its names, message classes, the permission it needs and its HTTP routes, if any."""

    service: str           # esimota.v1.WritingService
    name: str              # ApplyWrite
    input: type
    output: type
    permission: str        # write, chip, number, public, admin, staff
    clause: str            # 7.2.2.2
    routes: tuple[tuple[str, str], ...]  # (("GET", "/api/v1/write/apply"), ("POST", …))
    client_streaming: bool
    server_streaming: bool
    doc: str = ""
    staff_action: str = ""  # permission "staff": the action of service.staff.PERMISSIONS (R28)

    @property
    def path(self) -> str:
        """The gRPC path, /esimota.v1.WritingService/ApplyWrite."""
        return f"/{self.service}/{self.name}"


def _routes(method_desc) -> tuple[tuple[str, str], ...]:
    """GET and POST bindings of the google.api.http option, in declaration order."""
    opts = method_desc.GetOptions()
    if not opts.HasExtension(annotations_pb2.http):
        return ()
    out = []
    for rule in [opts.Extensions[annotations_pb2.http], *opts.Extensions[annotations_pb2.http].additional_bindings]:
        kind = rule.WhichOneof("pattern")
        if kind in ("get", "post"):
            out.append((kind.upper(), getattr(rule, kind)))
    return tuple(out)


def _method(service_desc, m) -> Method:
    opts = m.GetOptions()
    return Method(service_desc.full_name, m.name, message_factory.GetMessageClass(m.input_type),
                  message_factory.GetMessageClass(m.output_type), opts.Extensions[options_pb2.permission] or "admin",
                  opts.Extensions[options_pb2.clause], _routes(m), m.client_streaming, m.server_streaming,
                  staff_action=opts.Extensions[options_pb2.staff_action])


def methods() -> list[Method]:
    """Every method of every service of the API, in file and declaration order."""
    out = []
    for module in FILES:
        for service_desc in module.DESCRIPTOR.services_by_name.values():
            out.extend(_method(service_desc, m) for m in service_desc.methods)
    return out


def services() -> list[str]:
    return [s.full_name for module in FILES for s in module.DESCRIPTOR.services_by_name.values()]


#: Staff-facing services: served on the operations listener only, never on the partner ports (DESIGN §6).
STAFF_SERVICES = frozenset({"esimota.v1.AdminService", "esimota.v1.IngestService"})


def partner_services() -> list[str]:
    return [name for name in services() if name not in STAFF_SERVICES]


def staff_services() -> list[str]:
    return [name for name in services() if name in STAFF_SERVICES]


METHODS: list[Method] = methods()
BY_NAME: dict[str, Method] = {m.name: m for m in METHODS}
