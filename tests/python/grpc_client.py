"""A plain gRPC client (grpcio) that sends raw JSON text.

Usage::

    python grpc_client.py HOST:PORT PATH JSON_BODY [TIMEOUT_SECS]

Makes one unary call to PATH (for example ``/org.example.Greeter/sayHello``)
on an insecure HTTP/2 channel to HOST:PORT, with JSON_BODY sent as-is as the
message (UTF-8 text; grpcio's content-type is ``application/grpc``), and a
deadline of TIMEOUT_SECS (default 5).

Prints ``reply: <raw JSON text>`` and exits 0 on success; on a gRPC error
prints ``status: <code name> <details>`` and exits 1.

Used by the workspace's end-to-end tests (see tests/src/python.rs).
"""

import sys

import grpc


def main() -> None:
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    target, path, body = sys.argv[1], sys.argv[2], sys.argv[3]
    timeout = float(sys.argv[4]) if len(sys.argv) == 5 else 5.0

    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            path,
            request_serializer=lambda s: s.encode(),
            response_deserializer=lambda b: b.decode(),
        )
        try:
            reply = call(body, timeout=timeout)
        except grpc.RpcError as e:
            print(f"status: {e.code().name} {e.details()}", flush=True)
            sys.exit(1)
    print(f"reply: {reply}", flush=True)


if __name__ == "__main__":
    main()
