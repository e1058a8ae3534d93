"""The command line's admin client: where it asks, and its typed errors when the server
cannot be asked (the answers of a real server: tests/integration/test_status_metrics.py,
test_failover.py, test_reload.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import free_port, sample_config
from xprov import cli, config
from xprov.admin_client import AdminClient, AdminError, NoAdminApi, Unreachable, local_host


def test_the_client_of_a_config(tmp_path: Path) -> None:
    path = sample_config(tmp_path, admin_port=8181)
    cfg = config.load(path)
    assert cfg.admin is not None
    assert AdminClient.from_file(path) == AdminClient("http://127.0.0.1:8181", cfg.admin.token)
    assert [local_host(h) for h in ("0.0.0.0", "::", "10.0.0.1")] == [
        "127.0.0.1",
        "::1",
        "10.0.0.1",
    ]
    # a listener on every IPv6 address is asked on ::1, in brackets
    path.write_text(path.read_text().replace('"127.0.0.1:8181"', '"[::]:8181"'))
    assert AdminClient.from_file(path).url == "http://[::1]:8181"


def test_the_client_reads_only_the_admin_table(tmp_path: Path) -> None:
    """Break-it pass: `xprov reload` validated the whole edited file itself, so the server
    never saw (nor logged) the problems; now a file with problems elsewhere reaches it."""
    path = sample_config(tmp_path, admin_port=8181)
    path.write_text(path.read_text().replace("[http]\n", "[http]\nbogus = 1\n"))
    assert AdminClient.from_file(path).url == "http://127.0.0.1:8181"
    path.write_text(path.read_text() + "\n[[[")
    with pytest.raises(AdminError, match=r"cannot find the admin API .*send SIGHUP"):
        AdminClient.from_file(path)


def test_no_admin_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "xprov.toml"
    text = sample_config(tmp_path).read_text()
    start = text.index("[admin]")
    path.write_text(text[:start] + text[text.index("[templates]") :])
    with pytest.raises(NoAdminApi) as raised:
        AdminClient.from_file(path)
    assert str(raised.value) == f"{path}: no [admin] section: the server has no admin API"
    assert cli.main(["status", "-c", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == f"{raised.value}\n"


def test_nobody_listening(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    path = sample_config(tmp_path, admin_port=port)
    client = AdminClient.from_file(path)
    with pytest.raises(Unreachable) as raised:
        client.get("/status")
    assert str(raised.value).startswith(f"cannot reach the admin API at {client.url}/status: ")
    assert "Connection refused" in str(raised.value)
    assert client.token not in str(raised.value)
    assert cli.main(["failover", "sip", "--to", "virginia", "-c", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"cannot reach the admin API at {client.url}/failover: ")
