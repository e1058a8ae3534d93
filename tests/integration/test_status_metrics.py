"""Status, metrics and convergence of a running server after a scripted switch."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers import (
    FILES,
    SPA504G,
    SPA942,
    USER_AGENTS,
    YEALINK_T31G,
    YEALINK_T46G,
    XprovProcess,
    free_port,
    sample_config,
    wait_for,
    xprov,
)

TOKEN = "dev-admin-token-change-me"


def get(port: int, path: str, token: str | None = TOKEN) -> tuple[int, bytes]:
    args = ["curl", "-s", "--max-time", "5", "-w", "\n%{http_code}"]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(
        [*args, f"http://127.0.0.1:{port}{path}"], capture_output=True, check=True, timeout=10
    ).stdout
    body, _, code = out.rpartition(b"\n")
    return int(code), body


def phone_fetch(http: int, mac: str) -> None:
    name = FILES[mac][-1]  # the per-device file
    subprocess.run(
        [
            "curl",
            "-sf",
            "--max-time",
            "5",
            "-A",
            USER_AGENTS[mac],
            f"http://127.0.0.1:{http}/{name}",
        ],
        check=True,
        capture_output=True,
        timeout=10,
    )


@pytest.fixture
def server(tmp_path):
    http, admin = free_port(), free_port()
    config = sample_config(tmp_path, http_port=http, admin_port=admin)
    with XprovProcess(config, http, tmp_path / "xprov.log") as proc:
        yield proc, http, admin, config


def test_admin_listener_is_apart_from_the_phones(server) -> None:
    _, http, admin, _ = server
    assert get(http, "/status")[0] == 404  # phones' port: phones' files and /healthz only
    assert get(http, "/metrics")[0] == 404
    assert get(admin, "/status", token=None)[0] == 401
    assert get(admin, "/metrics", token="wrong-token-wrong-token")[0] == 401
    assert get(admin, "/healthz", token=None)[0] == 200
    # the status page: on the admin listener only, without a token (it holds no data)
    for path in ("/", "/page/app.js", "/page/app.css"):
        code, body = get(http, path, token=None)
        assert code == 404 and b"<title>" not in body and b"<script" not in body
        assert get(admin, path, token=None)[0] == 200
    # what the break-it pass tried with curl: another site's page, a rebound name
    for headers in (
        ["-H", "Origin: http://evil.test:8081"],
        ["-H", "Sec-Fetch-Site: same-site"],
        ["-H", "Host: evil.test", "-H", "Sec-Fetch-Site: same-origin"],  # DNS rebinding
    ):
        out = subprocess.run(
            [
                "curl",
                "-s",
                "--max-time",
                "5",
                "-w",
                "\n%{http_code}",
                "-X",
                "POST",
                "-H",
                f"Authorization: Bearer {TOKEN}",
                *headers,
                "-d",
                '{"service": "sip", "site": "virginia", "force": true}',
                f"http://127.0.0.1:{admin}/failover",
            ],
            capture_output=True,
            check=True,
            timeout=10,
        ).stdout
        body, _, code = out.rpartition(b"\n")
        assert code == b"403" and b"refused" in body and b"monitor" not in body, (headers, out)
    status = json.loads(get(admin, "/status")[1])
    assert status["selection"]["generation"] == 1  # nothing moved


def test_status_metrics_and_convergence_after_a_switch(server) -> None:
    proc, http, admin, config = server
    phones = [YEALINK_T46G, YEALINK_T31G, SPA504G, SPA942]
    for mac in phones:
        phone_fetch(http, mac)
    code, body = get(admin, "/status")
    status = json.loads(body)
    assert code == 200
    assert status["convergence"]["regular_phones"] == 4
    assert status["convergence"]["percent"] == 100.0
    assert status["inventory"]["phones"] == 4 and status["config"]["generation"] >= 1

    done = xprov(config, "failover", "sip", "--to", "virginia", "--force")
    assert done.returncode == 0, done.stderr
    for mac in phones[:3]:  # three of four phones poll before we look
        phone_fetch(http, mac)

    def probed() -> dict | None:  # each target's first probe ends within its timeout
        status = json.loads(get(admin, "/status")[1])
        targets = status["monitor"]["targets"].values()
        return status if all(t["last"] is not None for t in targets) else None

    status = wait_for(probed, 15, "every target probed once")
    assert status["selection"]["active"]["sip"] == "virginia"
    assert status["selection"]["generation"] == 2
    sip = status["monitor"]["services"]["sip"]
    assert (sip["active"], sip["manual"], sip["why"]) == (
        "virginia",
        "virginia",
        "operator chose virginia",
    )
    assert set(status["monitor"]["targets"]) == {
        f"{s}@{site}" for s in ("sip", "stun", "db") for site in ("chicago", "virginia")
    }
    target = status["monitor"]["targets"]["sip@chicago"]
    assert target["probe"] == "sip udp 127.0.0.1:5060" and target["last"] is not None
    convergence = status["convergence"]
    assert convergence["generation"] == 2
    assert (convergence["regular_phones"], convergence["fetched"], convergence["pending"]) == (
        4,
        3,
        1,
    )
    assert convergence["percent"] == 75.0 and convergence["slowest_s"] is not None

    code, metrics = get(admin, "/metrics")
    text = metrics.decode()
    assert code == 200
    for line in (
        'xprov_active_site{service="sip",site="virginia"} 1.0',
        'xprov_active_site{service="sip",site="chicago"} 0.0',
        'xprov_switches_total{by="operator",service="sip"} 1.0',
        "xprov_convergence_ratio 0.75",
        "xprov_convergence_pending_phones 1.0",
        "xprov_selection_generation 2.0",
        "xprov_inventory_phones 4.0",
        'xprov_requests_total{kind="device",status="served",transport="http",vendor="yealink"} 4.0',
        'xprov_probe_up{service="sip",site="chicago"} 0.0',
        "xprov_tftp_active_transfers 0.0",
        "xprov_tftp_evicted_total 0.0",
    ):
        assert line in text, line
    assert "xprov_render_cache_hits_total" in text and "xprov_inventory_age_seconds" in text

    assert 'xprov_probe_results_total{result="failed",service="sip",site="chicago"}' in text

    human = xprov(config, "status")
    assert human.returncode == 0
    assert "sip   active at virginia (manual: virginia): operator chose virginia" in human.stdout
    assert "3 of 4 phones polling regularly fetched generation 2" in human.stdout
    for secret in ("yk-1001-Secret", "provpass", TOKEN):
        assert secret not in text and secret not in json.dumps(status)
        assert secret not in proc.log()
    # a database switch changes no phone's file: convergence goes on counting generation 2
    done = xprov(config, "failover", "db", "--to", "virginia", "--force")
    assert done.returncode == 0, done.stderr
    status = json.loads(get(admin, "/status")[1])
    assert status["selection"]["generation"] == 3
    convergence = status["convergence"]
    assert (convergence["generation"], convergence["fetched"], convergence["pending"]) == (2, 3, 1)
    phone_fetch(http, phones[3])  # the last phone's file: generation 3 counts for 2
    convergence = json.loads(get(admin, "/status")[1])["convergence"]
    assert (convergence["fetched"], convergence["pending"], convergence["percent"]) == (4, 0, 100.0)
