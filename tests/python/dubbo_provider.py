"""A Greeter provider written with Apache Dubbo's Python implementation.

Usage::

    python dubbo_provider.py ZK_URL PORT TAG

Serves the interface ``org.example.Greeter`` over Triple on 127.0.0.1:PORT
and registers it in the ZooKeeper at ZK_URL (for example
``zookeeper://127.0.0.1:2181``): the library writes
``/dubbo/org.example.Greeter/providers/tri://127.0.0.1:PORT?...``.

Its one unary method ``sayHello`` takes JSON: a bare string (``"world"``,
what a Python consumer sends) or a list of one string (``["world"]``, the
arguments array a Java-style consumer sends), and answers the JSON string
``"Hello, <name> from TAG"``.

Prints ``listening`` once the server is started and registered, then runs
until it is killed. Used by the workspace's end-to-end tests (see
tests/src/python.rs).
"""

import json
import sys
import time

import dubbo
from dubbo.configs import RegistryConfig, ServiceConfig
from dubbo.proxy.handlers import RpcMethodHandler, RpcServiceHandler

SERVICE = "org.example.Greeter"


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    zk_url, port, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    def say_hello(request):
        # A list of one string is the arguments array; a string is the argument itself.
        if isinstance(request, list) and len(request) == 1 and isinstance(request[0], str):
            name = request[0]
        elif isinstance(request, str):
            name = request
        else:
            raise ValueError(f"sayHello expects a string or a list of one string, got {request!r}")
        return f"Hello, {name} from {tag}"

    handler = RpcServiceHandler(
        service_name=SERVICE,
        method_handlers=[
            RpcMethodHandler.unary(
                method=say_hello,
                method_name="sayHello",
                request_deserializer=json.loads,
                response_serializer=lambda reply: json.dumps(reply).encode(),
            )
        ],
    )
    registry = RegistryConfig.from_url(zk_url)
    server = dubbo.Dubbo(registry_config=registry).create_server(
        ServiceConfig(service_handler=handler, host="127.0.0.1", port=port)
    )
    server.start()
    print("listening", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
