from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import sample_config
from xprov.provisioning import Provisioner
from xprov.selection import ActiveSites
from xprov.service import load


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return sample_config(tmp_path)


@pytest.fixture
def provisioner(config_path: Path) -> Provisioner:
    inputs = load(config_path)
    return Provisioner(inputs, ActiveSites(inputs.config.sites, inputs.config.failover.primary))
