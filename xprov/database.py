"""Connections to a site's MySQL or MariaDB (PyMySQL, blocking: threads only), for the
inventory and the database probe alike."""

from __future__ import annotations

import socket
import time
from typing import Any

import pymysql
import pymysql.cursors

from xprov.config import DbService


def connect(db: DbService, timeout: float, streaming: bool = False) -> Any:
    """Authenticated, with all three timeouts: `connect_timeout` alone does not bound the
    handshake, and a server that accepts and never greets would hang the thread forever.
    `streaming`: rows are read as they come (SSCursor), not all at once."""
    connection = pymysql.connect(
        host=db.host,
        port=db.port,
        user=db.user,
        password=db.password,
        database=db.database,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        ssl_disabled=not db.tls,
        charset="utf8mb4",
        autocommit=True,
        cursorclass=pymysql.cursors.SSCursor if streaming else pymysql.cursors.Cursor,
        defer_connect=True,
    )
    connection.connect(_tcp(db.host, db.port, timeout))
    return connection


def _tcp(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection within `timeout`, sending a new SYN every third of it: the kernel
    would wait a whole second before it resends a lost one. A refusal fails at once."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            sock = socket.create_connection((host, port), timeout=max(0.05, min(left, timeout / 3)))
        except ConnectionRefusedError:
            raise
        except OSError:
            if deadline - time.monotonic() <= 0.05:
                raise
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
