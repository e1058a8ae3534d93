"""Issue 14: the model tables, row by row, against what their sources say.

tests/data/model_sources.toml is a transcript of each cited source, kept apart from the
tables: a row must cite exactly the sources that mention its model, every code or file it
serves must be one a cited source gives (unless the row says it is inferred), and its evidence
level must be what its sources support. Each row's User-Agent form must parse back to it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from xprov.vendors import (
    identify,
    linksys,
    linksys_models,
    shared_requests,
    unknown_models,
    yealink,
    yealink_models,
)
from xprov.vendors.base import Evidence
from xprov.vendors.linksys_models import Model as SpaModel
from xprov.vendors.yealink_models import Model as YealinkModel

TRANSCRIPT = tomllib.loads((Path(__file__).parent.parent / "data/model_sources.toml").read_text())
VENDOR_DOCUMENTS = {
    "yealink-apg-t4x-71",
    "yealink-admin-t2-t4-t5",
    "sipura-spa2000",
    "linksys-provisioning-3.01",
    "cisco-spa100-admin",
    "cisco-spa300-500-admin",
    "linksys-spa9000-admin",
}
MAC = "80:5e:c0:d5:7d:72"


def mentions(vendor: str, model: str) -> dict[str, int | str]:
    """Source -> what it says of `model` (a code, a file, or "" for a mention only)."""
    return {s: facts[model] for s, facts in TRANSCRIPT[vendor].items() if model in facts}


def evidence_from(stated_by: set[str]) -> Evidence:
    if stated_by & VENDOR_DOCUMENTS:
        return Evidence.VENDOR
    if len(stated_by) >= 2:
        return Evidence.PROJECTS
    return Evidence.PROJECT if stated_by else Evidence.INFERRED


@pytest.mark.parametrize("row", yealink_models.MODELS, ids=lambda m: m.name)
def test_yealink_row_against_its_sources(row: YealinkModel) -> None:
    said = mentions("yealink", row.name)
    assert set(row.sources) <= set(yealink_models.SOURCES)
    stated = {s for s, code in said.items() if code in row.codes}
    assert stated == set(said), f"sources give {said}, the row serves {row.codes}"
    assert set(said) <= set(row.sources), "a source that gives this model's file is not cited"
    backed = set(said.values())
    if row.evidence is Evidence.INFERRED:
        assert not said
        # inferred from a sourced model of the same family that has this file
        assert any(
            m.family == row.family and set(row.codes) <= set(m.codes) and m.evidence != row.evidence
            for m in yealink_models.MODELS
        )
    else:
        assert backed == set(row.codes), f"{set(row.codes) - backed} is served without a source"
        assert set(row.sources) == set(said)
    assert row.evidence is evidence_from(set(said))


@pytest.mark.parametrize("row", yealink_models.MODELS, ids=lambda m: m.name)
def test_yealink_row_user_agent_names_the_row(row: YealinkModel) -> None:
    """The model's real User-Agent form parses to the row's model, whose common file each
    code serves (a User-Agent decides between models that share a code)."""
    ua = f"{row.form.value.format(model=row.name)} {row.family}.86.0.5 {MAC}"
    assert yealink.parse_user_agent(ua) == yealink.UserAgent(
        row.name, f"{row.family}.86.0.5", "805ec0d57d72"
    )
    for code in row.codes:
        request = identify(f"/y{code:012d}.cfg", ua)
        assert request is not None and request.model == row.name
        assert request.name == f"y{row.codes[0]:012d}.cfg"  # one name per model
        assert identify(f"/y{code:012d}.cfg", None).model is not None  # type: ignore[union-attr]


def test_every_transcribed_yealink_model_is_in_the_table() -> None:
    names = {m.name for m in yealink_models.MODELS}
    transcribed = {model for facts in TRANSCRIPT["yealink"].values() for model in facts}
    assert transcribed <= names
    assert len(names) == len(yealink_models.MODELS)  # one row per model


@pytest.mark.parametrize("row", linksys_models.MODELS, ids=lambda m: m.name)
def test_spa_row_against_its_sources(row: SpaModel) -> None:
    said = mentions("linksys", row.name)
    assert set(said) <= set(row.sources) <= set(linksys_models.SOURCES)
    files = {str(f) for f in said.values() if f}
    assert files <= set(row.files), f"sources give {files}, the row serves {row.files}"
    if row.evidence is Evidence.INFERRED:
        assert not files
        assert all(f == f"spa{row.name[3:]}.cfg" for f in row.files)  # $PSN from its $PN
    else:
        assert files == set(row.files), f"{set(row.files) - files} is served without a source"
        assert set(row.sources) == set(said)
    stated_by = {s for s, f in said.items() if f}
    assert row.evidence is evidence_from(stated_by)


@pytest.mark.parametrize("row", linksys_models.MODELS, ids=lambda m: m.name)
def test_spa_row_user_agent_names_the_row(row: SpaModel) -> None:
    ua = row.user_agent.format(MAC="0002FDFF2103")
    parsed = linksys.parse_user_agent(ua)
    assert parsed is not None and parsed.model == row.name
    for file in row.files:
        request = identify(f"/{file}", ua)
        assert request is not None and (request.name, request.model) == (file, row.name)


def test_every_transcribed_spa_model_is_in_the_table() -> None:
    names = {m.name for m in linksys_models.MODELS}
    assert {model for facts in TRANSCRIPT["linksys"].values() for model in facts} <= names
    files = [f.lower() for m in linksys_models.MODELS for f in m.files]
    assert len(files) == len(set(files))  # a file names one model


def test_shared_requests_are_every_models_files_as_its_phones_ask() -> None:
    """What check-config renders: each shared file exactly as the phone of each row asks
    for it (the same request identify makes of its name and User-Agent)."""
    expected = [identify(yealink.COMMON_BOOT, None)]
    for row in yealink_models.MODELS:
        ua = f"{row.form.value.format(model=row.name)} {row.family}.86.0.5"
        expected.append(identify(f"y{row.codes[0]:012d}.cfg", ua))
    for spa in linksys_models.MODELS:
        expected += [identify(file, spa.user_agent.format(MAC="x")) for file in spa.files]
    assert list(shared_requests()) == expected
    assert all(r is not None and r.model is not None for r in expected[1:])


def test_unknown_models_name_the_phones_and_what_they_get() -> None:
    phones = [
        ("805ec0000001", "yealink", "t21p e2"),  # the table's T21P_E2, as an inventory writes it
        ("805ec0000002", "yealink", "SIP-T46G"),
        ("0002fd000001", "linksys", "spa-942"),
        *((f"805ec00001{n:02x}", "yealink", "T99X") for n in range(7)),
        ("0002fd000002", "linksys", "SPA999"),
    ]
    assert unknown_models(phones, shown=2) == [
        "linksys model 'SPA999' is not in xprov's model table (1 phones: 0002fd000002): "
        + linksys.unknown_model_effect(),
        "yealink model 'T99X' is not in xprov's model table (7 phones: 805ec0000100, "
        "805ec0000101, ...): " + yealink.unknown_model_effect(),
    ]
    assert yealink.unknown_model_effect() == (
        "its <mac>.cfg is served, and its <mac>.boot includes the generic y000000000000.cfg; "
        "a request for its own y0000000000XX.cfg is 404 until the table knows the model"
    )
    assert linksys.unknown_model_effect() == (
        "its <mac>.xml is served; its factory spa$PSN.cfg is 404 until the table knows the "
        "model (point its Profile_Rule at a known model's file, or at <mac>.xml)"
    )
    assert unknown_models(phones[:3]) == []


@pytest.mark.parametrize(
    ("written", "canonical"),
    [("t21p e2", "T21P_E2"), ("T19P-E2", "T19P_E2"), ("SIP-T46G", "T46G"), (" t46g ", "T46G"),
     ("SIP VP-T49G", "T49G"), ("W80DM", "W80DM")],
)  # fmt: skip
def test_an_inventory_model_in_any_spelling(written: str, canonical: str) -> None:
    assert yealink.canonical_model(written) == canonical
    assert yealink.known_model(written)
    assert yealink.common_file(written) == yealink.common_file(canonical)


def test_generic_common_file_for_a_model_outside_the_table() -> None:
    request = identify("805ec0000099.boot", None)
    assert request is not None
    assert yealink.context(request, "T99X") == {"common_file": "y000000000000.cfg"}
    assert yealink.context(request, "T31P") == {"common_file": "y000000000123.cfg"}
    assert linksys.canonical_model(" spa-504g ") == "SPA504G" and linksys.known_model("spa-504g")
    assert not linksys.known_model("SPA999") and not yealink.known_model("T99X")


def test_unknown_models_name_five_phones_then_say_there_are_more() -> None:
    five = [(f"805ec00002{n:02x}", "yealink", "T99X") for n in range(5)]
    (warning,) = unknown_models(five)
    assert (
        "(5 phones: 805ec0000200, 805ec0000201, 805ec0000202, 805ec0000203, 805ec0000204):"
        in warning
    )
    (warning,) = unknown_models([*five, ("805ec0000205", "yealink", "T99X")])
    assert (
        "(6 phones: 805ec0000200, 805ec0000201, 805ec0000202, 805ec0000203, 805ec0000204, ...):"
        in warning
    )
