"""DNS rebinding for the tests: names whose answer changes from one lookup to the next, in a real crawl.

`python tests/rebinding.py ANSWERS ARGS...` runs `python -m crawler ARGS...` in this process with
socket.getaddrinfo answering each name of ANSWERS (JSON: name -> [address, ...]) with its next address,
the last one for good; other names go to the real resolver. Under `--engine gevent` the process is
monkey-patched first (as crawler.__main__ does), and the resolver installed over gevent's.
`answers(...)` is the resolver itself, for tests in the pytest process.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable
from typing import Any


def answers(table: dict[str, list[str]], real: Callable[..., Any] = socket.getaddrinfo) -> Callable[..., Any]:
    """A getaddrinfo answering the names of `table` with their addresses in turn (see the module docstring)."""
    left = {name: list(addresses) for name, addresses in table.items()}

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        queue = left.get(str(host).lower())
        if queue is None:
            return real(host, port, *args, **kwargs)
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sockaddr = (address, int(port or 0), 0, 0) if family == socket.AF_INET6 else (address, int(port or 0))
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)]

    return getaddrinfo


def main() -> None:
    table, args = json.loads(sys.argv[1]), sys.argv[2:]
    from crawler import __main__ as entry

    if entry.wants_gevent(args):
        entry.patch_gevent()  # main() patches again with the same arguments: a no-op for gevent
    socket.getaddrinfo = answers(table, socket.getaddrinfo)
    sys.argv = ["crawl", *args]
    entry.main()


if __name__ == "__main__":
    main()
