"""The command line's admin client: where it asks, and its typed errors when the server
cannot be asked (the answers of a real server: tests/integration/test_status_metrics.py,
test_failover.py, test_reload.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.helpers import free_port, sample_config
from xprov import cli, config
from xprov.admin_client import AdminClient, NoAdminApi, Unreachable, local_host


def test_the_client_of_a_config(tmp_path: Path) -> None:
    cfg = config.load(sample_config(tmp_path, admin_port=8181))
    assert cfg.admin is not None
    assert AdminClient.of(cfg) == AdminClient("http://127.0.0.1:8181", cfg.admin.token)
    assert [local_host(h) for h in ("0.0.0.0", "::", "10.0.0.1")] == [
        "127.0.0.1",
        "::1",
        "10.0.0.1",
    ]
    # a listener on every IPv6 address is asked on ::1, in brackets
    everywhere = dataclasses.replace(cfg.admin.listen[0], host="::")
    v6 = dataclasses.replace(cfg, admin=dataclasses.replace(cfg.admin, listen=[everywhere]))
    assert AdminClient.of(v6).url == "http://[::1]:8181"


def test_no_admin_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "xprov.toml"
    text = sample_config(tmp_path).read_text()
    start = text.index("[admin]")
    path.write_text(text[:start] + text[text.index("[templates]") :])
    with pytest.raises(NoAdminApi) as raised:
        AdminClient.of(config.load(path))
    assert str(raised.value) == f"{path}: no [admin] section: the server has no admin API"
    assert cli.main(["status", "-c", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == f"{raised.value}\n"


def test_nobody_listening(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    path = sample_config(tmp_path, admin_port=port)
    client = AdminClient.of(config.load(path))
    with pytest.raises(Unreachable) as raised:
        client.get("/status")
    assert str(raised.value).startswith(f"cannot reach the admin API at {client.url}/status: ")
    assert "Connection refused" in str(raised.value)
    assert client.token not in str(raised.value)
    assert cli.main(["failover", "sip", "--to", "virginia", "-c", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"cannot reach the admin API at {client.url}/failover: ")
