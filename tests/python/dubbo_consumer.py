"""A Greeter consumer written with Apache Dubbo's Python implementation.

Usage::

    python dubbo_consumer.py ZK_URL NAME [COUNT]

Finds the providers of ``org.example.Greeter`` in the ZooKeeper at ZK_URL
(for example ``zookeeper://127.0.0.1:2181``) and calls their unary method
``sayHello`` COUNT times (default 1) over Triple. The request is the bare
JSON string NAME (``"world"``: the natural way a Python user calls a
one-argument method); the reply is decoded as JSON.

Prints each reply as ``reply: <text>`` on its own line. On an error it prints
``error: <exception type>: <message>`` and exits 1.

Waiting for providers: the library (apache-dubbo 3.0.0b1) lists providers
with a kazoo children watch on ``/dubbo/org.example.Greeter/providers``.
When that node already has children as the client is created, they are read
before ``create_client`` returns; otherwise they arrive later on kazoo's
thread, and a call made before that fails with ``RpcError: RPC Invocation
failed: No provider available for the service``. Two flaws of the library
can make that state permanent: a watch set on a node that does not exist
yet stops for good, and a provider that was listed before it accepted
connections (the Python provider registers before it binds its port) makes
that notification fail on kazoo's thread and is never tried again. So the
first call is retried on "No provider available" for up to 10 s, and a new
client is created once a second while it lasts. Every other error (for
example ``RemotingError: Failed to connect to the server`` from
``create_client`` when a listed provider refuses connections, after the
library's 3 s connect timeout), and any error on a later call, is final.

Used by the workspace's end-to-end tests (see tests/src/python.rs).
"""

import json
import os
import sys
import time

import dubbo
from dubbo.configs import ReferenceConfig, RegistryConfig

SERVICE = "org.example.Greeter"
FIRST_CALL_PATIENCE_SECS = 10.0
NEW_CLIENT_EVERY_SECS = 1.0


def is_no_provider(error: Exception) -> bool:
    return "No provider available" in str(error)


def main() -> int:
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    zk_url, name = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) == 4 else 1

    bootstrap = dubbo.Dubbo(registry_config=RegistryConfig.from_url(zk_url))

    def new_client():
        client = bootstrap.create_client(ReferenceConfig(protocol="tri", service=SERVICE))
        return client.unary(
            method_name="sayHello",
            request_serializer=lambda n: json.dumps(n).encode(),
            response_deserializer=json.loads,
        )

    try:
        say_hello = new_client()
        deadline = time.monotonic() + FIRST_CALL_PATIENCE_SECS
        created = time.monotonic()
        while True:
            try:
                reply = say_hello(name)
                break
            except Exception as e:  # the library raises plain Exception subclasses
                if not is_no_provider(e) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.1)
            if time.monotonic() - created >= NEW_CLIENT_EVERY_SECS:
                say_hello = new_client()
                created = time.monotonic()
        print(f"reply: {reply}", flush=True)
        for _ in range(count - 1):
            print(f"reply: {say_hello(name)}", flush=True)
    except Exception as e:
        print(f"error: {type(e).__name__}: {e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's shutdown, which would wait for any non-daemon
    # thread the library left running (kazoo's, its event loop's).
    os._exit(code)
