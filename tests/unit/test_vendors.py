"""File-name and User-Agent routing for every example in reference/phones.md."""

from __future__ import annotations

import pytest

from xprov.vendors import identify, linksys, yealink

T46G_UA = "Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37"


@pytest.mark.parametrize(
    ("user_agent", "model", "firmware", "mac"),
    [
        ("Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37", "T46G", "28.72.0.1", "0015654aa937"),
        (
            "Yealink SIP-T31G 124.85.257.55 80:5e:c0:d5:7d:72",
            "T31G",
            "124.85.257.55",
            "805ec0d57d72",
        ),
        ("Yealink SIP VP-T49G 51.80.0.10 00:15:65:12:34:56", "T49G", "51.80.0.10", "001565123456"),
        ("Yealink W52P 25.80.0.15 00:15:65:12:34:56", "W52P", "25.80.0.15", "001565123456"),
        ("W52P 25.30.0.2 00:15:65:12:34:56", "W52P", "25.30.0.2", "001565123456"),
        ("Yealink  SIP-T46G  28.72.0.1  00:15:65:4a:a9:37", "T46G", "28.72.0.1", "0015654aa937"),
        ("Yealink SIP-T46G 28.72.0.1 0015654AA937", "T46G", "28.72.0.1", "0015654aa937"),
        ("Yealink SIP-T46G 28.72.0.1", "T46G", "28.72.0.1", None),
        ("Yealink-T46G 28.71.0.81 28.1.0.128.0.0.0", "T46G", "28.71.0.81", None),
        (
            "Yealink SIP-T21P_E2 52.84.0.15 00:15:65:12:34:56",
            "T21P_E2",
            "52.84.0.15",
            "001565123456",
        ),
        ("Yealink SIP-T19P E2 53.84.0.15", "T19P_E2", "53.84.0.15", None),  # a space for "_"
    ],
)
def test_yealink_user_agents(user_agent: str, model: str, firmware: str, mac: str | None) -> None:
    ua = yealink.parse_user_agent(user_agent)
    assert ua == yealink.UserAgent(model, firmware, mac)


@pytest.mark.parametrize(
    "user_agent",
    [
        None,
        "",
        "curl/8.0",
        "Cisco/SPA508G-7.4.4 (x)(y)",
        "Yealink",
        "Mozilla/5.0 (X11; Linux x86_64)",
    ],
)
def test_yealink_foreign_user_agents(user_agent: str | None) -> None:
    assert yealink.parse_user_agent(user_agent) is None


@pytest.mark.parametrize(
    ("user_agent", "model", "firmware", "mac"),
    [
        # old firmware: the group is the serial number, even though it looks like hex
        ("Linksys/SPA-942-6.1.5(a) (88019FA42805)", "SPA942", "6.1.5(a)", None),
        ("Cisco/SPA508G-7.4.4 (0002FDFF2103)(CBT141400UK)", "SPA508G", "7.4.4", "0002fdff2103"),
        ("Cisco/SPA525G-7.4.4 (CBT141900G7)", "SPA525G", "7.4.4", None),
    ],
)
def test_spa_user_agents(user_agent: str, model: str, firmware: str, mac: str | None) -> None:
    assert linksys.parse_user_agent(user_agent) == linksys.UserAgent(model, firmware, mac)


@pytest.mark.parametrize(
    ("path", "kind", "mac"),
    [
        ("00156574b150.boot", "device_boot", "00156574b150"),
        ("/00156574B150.boot", "device_boot", "00156574b150"),
        ("y000000000000.boot", "common_boot", None),
        ("y000000000028.cfg", "common", None),
        ("/y000000000123.cfg", "common", None),
        ("00156574b150.cfg", "device", "00156574b150"),
        ("00156574B150.cfg", "device", "00156574b150"),
        ("/provisioning/00156574b150.cfg", "device", "00156574b150"),
    ],
)
def test_yealink_files(path: str, kind: str, mac: str | None) -> None:
    request = identify(path, None)
    assert request is not None
    assert (request.vendor, request.kind, request.mac) == ("yealink", kind, mac)
    assert request.name == path.rpartition("/")[2].lower()  # one spelling per file
    assert request.spec == yealink.FILES[kind]


def test_yealink_common_file_model_from_user_agent_or_code_table() -> None:
    assert identify("y000000000028.cfg", None).model == "T46G"  # type: ignore[union-attr]
    assert identify("y000000000123.cfg", None).model == "T31G"  # type: ignore[union-attr]
    # a User-Agent names the model even when the code table disagrees
    assert identify("y000000000028.cfg", "Yealink SIP-T48G 35.1.2.3").model == "T48G"  # type: ignore[union-attr]
    assert identify("y000000000999.cfg", None).model is None  # type: ignore[union-attr]
    # the common boot file is the same for every model: it names none
    assert identify("y000000000000.boot", T46G_UA).model is None  # type: ignore[union-attr]


def test_file_name_identifies_the_phone_user_agent_only_hints() -> None:
    request = identify("00156574b150.cfg", T46G_UA)  # the UA names another phone
    assert request is not None
    assert request.mac == "00156574b150" and request.ua_mac is None
    common = identify("y000000000028.cfg", T46G_UA)
    assert common is not None
    assert common.mac is None and common.ua_mac == "0015654aa937"


@pytest.mark.parametrize(
    "path",
    [
        "00156574b150-local.cfg",
        "00156574B150-local.cfg",
        "00156574b15.cfg",
        "0015657xb150.cfg",
        "y00000000028.cfg",
        "y000000000028.txt",
        "favicon.ico",
        "",
        "/",
        "../../etc/passwd",
        "spa.xml",
        "spa9420.cfg.bak",
        "y000000000001.boot",  # every model asks for y000000000000.boot, no other
        "y000000000028.boot",
        "00156574b150.cfg/",
        "a" * 200 + ".cfg",
        # "$" would match before a final newline (a TFTP name may carry one)
        "00156574b150.cfg\n",
        "00156574b150.boot\n",
        "y000000000028.cfg\n",
        "spa504G.cfg\n",
        "0002fdff2103.xml\n",
        "y00000000002\u0668.cfg",  # a non-ASCII digit
    ],
)
def test_not_ours(path: str) -> None:
    assert identify(path, T46G_UA) is None


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/spa942.cfg", "SPA942"),
        ("spa504G.cfg", "SPA504G"),
        ("spa112.cfg", "SPA112"),
        ("spa2102.cfg", "SPA2102"),
        ("spa3102.cfg", "SPA3102"),
        ("/spa.cfg", "SPA2000"),
        ("/init.cfg", "PAP2T"),
    ],
)
def test_spa_model_files(path: str, model: str) -> None:
    request = identify(path, None)
    assert request is not None
    assert (request.vendor, request.kind, request.mac, request.model) == (
        "linksys",
        "model",
        None,
        model,
    )
    assert request.name == path.lstrip("/")


def test_spa_model_file_takes_mac_hint_from_user_agent() -> None:
    request = identify("/spa508G.cfg", "Cisco/SPA508G-7.4.4 (0002FDFF2103)(CBT141400UK)")
    assert request is not None
    assert request.ua_mac == "0002fdff2103" and request.model == "SPA508G"
    assert identify("/spa.cfg", "Cisco/SPA525G-7.4.4 (CBT141900G7)").model == "SPA525G"  # type: ignore[union-attr]


@pytest.mark.parametrize("path", ["0002fdff2103.xml", "/0002FDFF2103.xml"])
def test_spa_device_file(path: str) -> None:
    request = identify(path, "Cisco/SPA508G-7.4.4 (0002FDFF2103)(CBT141400UK)")
    assert request is not None
    assert (request.vendor, request.kind, request.mac) == ("linksys", "device", "0002fdff2103")
    assert request.name == "0002fdff2103.xml" and request.spec == linksys.FILES["device"]


def test_common_file_names() -> None:
    assert yealink.common_file("T46G") == "y000000000028.cfg"
    assert yealink.common_file("t43u") == "y000000000107.cfg"
    assert yealink.common_file("NOPE") is None
    assert yealink.common_file(None) is None


@pytest.mark.parametrize(
    ("path", "model"), [("/spa504g.cfg", "SPA504G"), ("/Spa525g.cfg", "SPA525G")]
)
def test_spa_model_is_named_in_capitals_whatever_the_file_names_case(path: str, model: str) -> None:
    request = identify(path, None)
    assert request is not None and request.model == model


def test_a_long_yealink_user_agent_still_gives_its_mac_hint() -> None:
    ua = f"Yealink SIP-T46G 28.{'8' * 200}.1 00:15:65:4a:a9:37"
    assert len(ua) <= 256
    request = identify("y000000000028.cfg", ua)
    assert request is not None and request.ua_mac == "0015654aa937"
    assert identify("y000000000028.cfg", ua + "x" * 100).ua_mac is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("path", "user_agent", "name", "model"),
    [
        # a common file is named by its model, whatever code was asked for
        ("y000000000028.cfg", None, "y000000000028.cfg", "T46G"),
        ("y000000000028.cfg", "Yealink SIP-T48G 35.1.2.3", "y000000000035.cfg", "T48G"),
        # a User-Agent naming no known model does not name the file
        ("y000000000028.cfg", "Yealink SIP-T99Z 99.1.2.3", "y000000000028.cfg", "T46G"),
        ("y000000000999.cfg", "Yealink SIP-T99Z 99.1.2.3", "y000000000999.cfg", None),
        ("y000000000999.cfg", "Yealink SIP-T46G 28.1.2.3", "y000000000028.cfg", "T46G"),
        ("00156574B150.CFG", None, "00156574b150.cfg", None),
        ("00156574B150.Boot", None, "00156574b150.boot", None),
        ("spa504g.cfg", None, "spa504G.cfg", "SPA504G"),
        ("SPA504G.CFG", None, "spa504G.cfg", "SPA504G"),
        ("spa525G2.cfg", None, "spa525G2.cfg", "SPA525G2"),
        ("SPA.CFG", None, "spa.cfg", "SPA2000"),
        ("Init.cfg", "Cisco/SPA122-1.4.1 (SR5) (0002FDFF2103)(CBT1)", "init.cfg", "SPA122"),
        ("init.cfg", "Linksys/PAP2T-5.1.6(LS) (88019FA42805)", "init.cfg", "PAP2T"),
        ("spa.cfg", "Cisco/SPA999X-7.4.4 (CBT141900G7)", "spa.cfg", "SPA2000"),
        ("spa9999.cfg", None, "spa9999.cfg", None),
        ("spa504Z.cfg", None, "spa504z.cfg", None),
        ("Y000000000000.BOOT", None, "y000000000000.boot", None),
        ("Y000000000123.CFG", None, "y000000000123.cfg", "T31G"),
        ("Y000000000999.CFG", None, "y000000000999.cfg", None),
        ("0002FDFF2103.XML", None, "0002fdff2103.xml", None),
    ],
)
def test_one_canonical_name_per_file(path, user_agent, name: str, model: str | None) -> None:
    """Issue 13, item 11: the render cache is keyed by the file's name, so every spelling
    of a file must be one name, and a name that names no known model is kept as asked (and
    answered 404, never cached): distinct names can never fill the cache."""
    request = identify(path, user_agent)
    assert request is not None
    assert (request.name, request.model) == (name, model)
    assert request.spec.per_model is (request.kind in ("common", "model"))


def test_model_files_are_bounded_by_the_model_tables() -> None:
    """Every spelling of every name a model file can have maps to one (name, model) per
    model of the vendor's table (or to None): at most one cache entry per model."""
    names = set()
    for code in range(0, 1000):
        for ua in (None, "Yealink SIP-T48G 35.1.2.3"):
            request = identify(f"y{code:012d}.cfg", ua)
            assert request is not None
            if request.model is not None:
                names.add((request.name, request.model))
    assert len(names) <= len(yealink.MODEL_CODES)
    spa = set()
    files = [file for model in linksys.MODELS for file in model.files]
    for file in [*files, *(f.lower() for f in files), *(f.upper() for f in files), "spa504Z.cfg"]:
        request = identify(file, None)
        assert request is not None
        if request.model is not None:
            spa.add((request.name, request.model))
    assert len(spa) == len(files)


@pytest.mark.parametrize(
    ("path", "user_agent", "mac"),
    [
        ("y000000000000.boot", "Yealink SIP-T46G 28.72.0.1 00:15:65:74:b1:50", "00156574b150"),
        ("spa9999.cfg", "Cisco/SPA508G-7.4.4 (0002FDFF2103)(CBT141400UK)", "0002fdff2103"),
        ("spa.cfg", "Cisco/SPA508G-7.4.4 (0002FDFF2103)(CBT141400UK)", "0002fdff2103"),
        ("init.cfg", "Cisco/SPA122-1.4.1 (0002FDFF2104)(CBT1)", "0002fdff2104"),
    ],
)
def test_every_shared_file_keeps_the_user_agents_mac_hint(path, user_agent, mac) -> None:
    """Convergence learns which known phone fetched a shared file from the hint, whatever
    the file (and a model file of an unknown model is still the vendor's)."""
    request = identify(path, user_agent)
    assert request is not None
    assert (request.vendor, request.ua_mac) == (
        "yealink" if path.startswith("y") else "linksys",
        mac,
    )
