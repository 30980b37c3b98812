"""gRPC server reflection in both versions: grpc.reflection.v1 (current grpcurl, IDEs) and v1alpha (older tools).

grpcio-reflection ships only v1alpha. The v1 protocol is the same file under another package (same
messages, same field numbers), so one servicer answers both: the v1 descriptor is registered in the
default pool (so `describe grpc.reflection.v1.ServerReflection` works) and the v1 service is served
with the v1alpha message classes, whose bytes are identical.
"""

from __future__ import annotations

from typing import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection as alpha
from grpc_reflection.v1alpha import reflection_pb2 as alpha_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc as alpha_grpc

V1_SERVICE = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE = alpha.SERVICE_NAME
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _v1_descriptor() -> None:
    """Add grpc/reflection/v1/reflection.proto to the default pool (once), derived from v1alpha's."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_V1_FILE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    alpha_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = "." + proto.package, ".grpc.reflection.v1"
    proto.name, proto.package = _V1_FILE, "grpc.reflection.v1"
    for message in proto.message_type:
        for fld in message.field:
            if fld.type_name.startswith(old + "."):
                fld.type_name = new + fld.type_name[len(old):]
    for service in proto.service:
        for method in service.method:
            method.input_type = new + method.input_type[len(old):]
            method.output_type = new + method.output_type[len(old):]
    pool.AddSerializedFile(proto.SerializeToString())


def _pool_of(service_names: Iterable[str]) -> descriptor_pool.DescriptorPool:
    """A pool holding only the files that define `service_names` and what they import: reflection answers
    from it, so a listener's reflection describes its own services and nothing else the process loaded
    (the partner port must not hand out admin.proto to a `file_containing_symbol` query; issue 14)."""
    default = descriptor_pool.Default()
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file) -> None:
        if file.name in added:
            return
        for dep in file.dependencies:
            add(dep)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        pool.Add(proto)
        added.add(file.name)

    for name in service_names:
        add(default.FindServiceByName(name).file)
    return pool


def enable(server: grpc.aio.Server, service_names: Iterable[str]) -> list[str]:
    """Serve reflection v1 and v1alpha for `service_names` (plus both reflection services), describing
    only the files of these services; returns the names."""
    _v1_descriptor()
    names = list(dict.fromkeys([*service_names, V1_SERVICE, V1ALPHA_SERVICE]))
    servicer = alpha.aio.ReflectionServicer(names, pool=_pool_of(names))
    alpha_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=alpha_pb2.ServerReflectionRequest.FromString,
        response_serializer=alpha_pb2.ServerReflectionResponse.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(V1_SERVICE, {"ServerReflectionInfo": v1}),))
    return names
