"""The reference for bench_http.py: a bare twisted.web static resource, nothing else.

python -m tests.bench.bare_twisted_web PORT FILE
"""

from __future__ import annotations

import sys

from twisted.internet import reactor
from twisted.web.server import Site
from twisted.web.static import Data


class QuietSite(Site):
    def log(self, request: object) -> None:  # no access log, as xprov
        pass


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    with open(path, "rb") as f:
        body = f.read()
    root = Data(body, "text/plain; charset=utf-8")
    root.isLeaf = True
    reactor.listenTCP(port, QuietSite(root), interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()
