"""The addresses a simulated phone tries (issue 16): parsing `--server`, which failed
attempts move on to the next address, and the per-address figures of the result (pure:
no socket, no clock)."""

from __future__ import annotations

import re

import pytest
from twisted.internet import defer, error
from twisted.web.client import ResponseNeverReceived

from xprov import cli
from xprov.drill import outcome, report
from xprov.drill.phones import SimPhone
from xprov.drill.run import Observation, Record
from xprov.drill.servers import Attempt, Server, attempt_of, parse_server


@pytest.mark.parametrize(
    ("text", "server"),
    [
        ("10.0.0.2", Server("10.0.0.2", 8080, 6969)),
        ("10.0.0.2:80", Server("10.0.0.2", 80, 6969)),
        ("prov-b.example.net:80:69", Server("prov-b.example.net", 80, 69)),
        ("[::1]", Server("::1", 8080, 6969)),
        ("[::1]:8081:6970", Server("::1", 8081, 6970)),
    ],
)
def test_a_server_and_the_ports_it_leaves_to_the_config(text: str, server: Server) -> None:
    assert parse_server(text, 8080, 6969) == server


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "is not HOST[:HTTP_PORT[:TFTP_PORT]]"),
        ("::1", "is not HOST[:HTTP_PORT[:TFTP_PORT]]"),  # IPv6 needs its brackets
        ("10.0.0.2:80:69:1", "at most two ports"),
        ("10.0.0.2:0", "'0' is not a port"),
        ("10.0.0.2:http", "'http' is not a port"),
        ("10.0.0.2:", "'' is not a port"),
    ],
)
def test_a_bad_server_is_refused_with_its_reason(text: str, why: str, capsys) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_server(text, 8080, None)
    with pytest.raises(SystemExit) as exited:  # the command line says it before any run
        cli.main(["drill", "--server", text])
    assert exited.value.code == 2 and why in capsys.readouterr().err


def test_a_server_is_named_by_its_http_address() -> None:
    assert str(Server("10.0.0.2", 80, 69)) == "10.0.0.2:80"
    assert str(Server("::1", 8080, None)) == "[::1]:8080"


@pytest.mark.parametrize(
    ("reason", "attempt"),
    [
        (error.ConnectionRefusedError(), Attempt.REFUSED),
        (defer.TimeoutError(), Attempt.TIMED_OUT),  # the attempt's deadline
        (error.TimeoutError(), Attempt.TIMED_OUT),  # the connect timeout
        (error.TCPTimedOutError(), Attempt.TIMED_OUT),
        (RuntimeError("TFTP ERROR 1"), Attempt.FAILED),  # the server answered
        (ResponseNeverReceived([]), Attempt.FAILED),  # it accepted, then hung up
    ],
)
def test_only_an_address_that_did_not_answer_is_passed_over(reason, attempt) -> None:
    assert attempt_of(reason) is attempt
    assert attempt.moves_on is (attempt is not Attempt.FAILED)


def phone(i: int) -> SimPhone:
    return SimPhone(f"0015657400{i:02x}", "yealink", "http", None, ("f",), 0.0, False)


def test_the_result_counts_fetches_failed_attempts_and_phones_per_server() -> None:
    phones = [phone(0), phone(1)]
    a, b = "10.0.0.1:80", "10.0.0.2:80"
    rec = Record(started=0.0, ended=10.0, requests=5, servers=[a, b])
    rec.fetches.update({a: 2, b: 3})
    rec.failed_attempts.update({a: 3})
    rec.seen = {
        phones[0].mac: [Observation(1.0, {}, 0, a), Observation(6.0, {}, 0, b)],
        phones[1].mac: [Observation(2.0, {}, 0, b)],
    }
    result = outcome.result(rec, phones, [], outcome.Settings(5.0, 0.0, (1.0, 2.0)))
    assert result["servers"] == {
        a: {"fetches": 2, "failed_attempts": 3, "phones": 1},
        b: {"fetches": 3, "failed_attempts": 0, "phones": 2},
    }
    assert list(result["servers"]) == [a, b]  # in the order the phones try them
    text = report.describe(result)
    assert f"server {a}: 2 fetches answered, 3 attempts refused or timed out" in text
    assert f"server {b}: 3 fetches answered, 0 attempts refused or timed out" in text
    one = Record(started=0.0, ended=10.0, servers=[a])  # one address: as before
    assert "servers" not in outcome.result(one, phones, [], outcome.Settings(5.0, 0.0, (1, 2)))
