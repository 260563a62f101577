"""Writes governance rules into ZooKeeper the way an operator would (kazoo,
not the framework's own API), for tests/tests/governance.rs.

Usage::

    zk_rules.py HOSTS set PATH TEXT          create or overwrite a node (parents made)
    zk_rules.py HOSTS delete PATH            delete a node (absent is fine)
    zk_rules.py HOSTS child DIR URL          create DIR/URLEncoder.encode(URL) (a legacy rule)
    zk_rules.py HOSTS churn PATH N TEXT_A TEXT_B
                                             write TEXT_A, TEXT_B, TEXT_A, ... N times

Prints ``done`` when finished (``done N`` for churn); exits 1 with the error otherwise.
"""

import sys
import urllib.parse

from kazoo.client import KazooClient


def java_url_encode(text):
    # java.net.URLEncoder: spaces as '+', unreserved: letters, digits, . - * _
    return urllib.parse.quote_plus(text, safe="*").replace("~", "%7E")


def main(argv):
    hosts, op, args = argv[1], argv[2], argv[3:]
    zk = KazooClient(hosts=hosts, timeout=10.0)
    zk.start(timeout=10)
    try:
        if op == "set":
            path, text = args
            if zk.exists(path):
                zk.set(path, text.encode())
            else:
                zk.create(path, text.encode(), makepath=True)
            print("done", flush=True)
        elif op == "delete":
            (path,) = args
            if zk.exists(path):
                zk.delete(path)
            print("done", flush=True)
        elif op == "child":
            directory, url = args
            zk.create(directory + "/" + java_url_encode(url), b"", makepath=True)
            print("done", flush=True)
        elif op == "churn":
            path, count, a, b = args
            count = int(count)
            if not zk.exists(path):
                zk.create(path, a.encode(), makepath=True)
            for i in range(count):
                zk.set(path, (a if i % 2 == 0 else b).encode())
            print("done", count, flush=True)
        else:
            raise SystemExit("unknown operation " + op)
    finally:
        zk.stop()
        zk.close()


if __name__ == "__main__":
    main(sys.argv)
