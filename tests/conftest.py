from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import sample_config
from xprov.build import load
from xprov.guard import Gate, Policy
from xprov.provisioning import Provisioner
from xprov.selection import ActiveSites


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return sample_config(tmp_path)


@pytest.fixture
def provisioner(config_path: Path) -> Provisioner:
    inputs = load(config_path)
    return Provisioner(inputs, ActiveSites(inputs.config.sites, inputs.config.failover.primary))


@pytest.fixture
def gate(provisioner: Provisioner) -> Gate:
    """The gate of the sample config (no authentication, the default budgets)."""
    return Gate(provisioner, Policy.of(provisioner.inputs.config))


@pytest.fixture
def log_events():
    """Every structured event logged during the test, decoded (a callable)."""
    import io
    import json

    from xprov import logs

    stream = io.StringIO()
    logs.configure("json", "debug", stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logs.configure("json", "info")


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory):
    """One real MariaDB for the whole run (initialising a data directory takes a second)."""
    from tests.peers import MariaDB, free_udp_tcp_port

    server = MariaDB(tmp_path_factory.mktemp("mariadb"), free_udp_tcp_port())
    with server:
        yield server


@pytest.fixture(scope="module")
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A real 3-member etcd cluster on loopback for a test module (tests/etcd.py); a test that
    kills or freezes a member heals the cluster after itself (`EtcdCluster.heal`)."""
    from tests.etcd import EtcdCluster

    with EtcdCluster(tmp_path_factory.mktemp("etcd")) as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def security_lines_budget_full() -> None:
    """Each test starts with every reason's budget of bounded log lines full (the budget is
    the process's, and a test session is one long process)."""
    from xprov.security_log import reset_all

    reset_all()


@pytest.fixture(scope="session", autouse=True)
def logs_to_this_sessions_stdout() -> None:
    """Log to this session's stdout: a tool that runs several sessions in one process (mutmut)
    would otherwise write to the capture file an earlier session closed."""
    from xprov import logs

    logs.configure("json", "info")


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_output(tmp_path_factory: pytest.TempPathFactory):
    """After the whole run: no log written by any process the tests started (xprov, its
    CLI, the peers) holds a sample password, HTTP password, DB password or admin token."""
    yield
    from tests.helpers import SAMPLE_PASSWORDS

    secrets = [
        *SAMPLE_PASSWORDS,
        "http-T46G-Secret",
        "http-SPA-Secret",
        "dev-admin-token-change-me",
        "pkg-1001-Secret",
    ]
    base = tmp_path_factory.getbasetemp()
    leaks = []
    for path in base.rglob("*.log"):
        text = path.read_text(errors="replace")
        leaks += [f"{path}: {secret}" for secret in secrets if secret in text]
    assert not leaks, "secrets in outputs:\n" + "\n".join(leaks)
