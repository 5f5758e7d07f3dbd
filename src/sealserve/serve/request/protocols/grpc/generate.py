"""Compile grpc_predict_v2.proto into oip_v2_descriptor.py (a development step: needs grpcio-tools).

Run ``python -m sealserve.serve.request.protocols.grpc.generate`` after editing the .proto. The result is a
serialized FileDescriptorProto, shipped in the package so the server needs neither protoc nor
generated classes in protobuf's default descriptor pool (where they would collide with the
``inference.*`` symbols that tritonclient and kserve register).
"""

from __future__ import annotations

import base64
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE / "grpc_predict_v2.proto"
MODULE = HERE / "oip_v2_descriptor.py"
LINE = 100


def compile_descriptor(proto: Path = PROTO) -> bytes:
    """The FileDescriptorProto of `proto`, serialized, as protoc (grpcio-tools) builds it."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "descriptor.pb"
        status = protoc.main(["protoc", f"-I{proto.parent}", f"--descriptor_set_out={out}", proto.name])
        if status != 0:
            raise RuntimeError(f"protoc failed on {proto} (status {status})")
        from google.protobuf import descriptor_pb2  # type: ignore[import-untyped]

        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
        return bytes(files[0].SerializeToString(deterministic=True))


def render_module(serialized: bytes) -> str:
    encoded = base64.b64encode(serialized).decode("ascii")
    lines = "\n".join(f'    "{chunk}"' for chunk in textwrap.wrap(encoded, LINE))
    return (
        '"""Generated from grpc_predict_v2.proto by `python -m sealserve.serve.request.protocols.grpc.generate`; do not edit."""\n\n'
        "import base64\n\n"
        "FILE_DESCRIPTOR = base64.b64decode(\n"
        f"{lines}\n"
        ")\n"
    )


def main() -> None:
    MODULE.write_text(render_module(compile_descriptor()))
    print(f"wrote {MODULE}")


if __name__ == "__main__":
    main()
