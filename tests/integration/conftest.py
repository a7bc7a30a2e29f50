"""Integration tests: the real playbooks against the running lab (qflow-lab), through qflow_ops.run."""

from __future__ import annotations

import pytest
import yaml

from labtest import LAB_INVENTORY, LAB_NODES, lab, wait_green


@pytest.fixture(scope="session")
def lab_inventory():
    """The lab with LAB_NODES nodes, up and healed; yields the inventory path."""
    lab("up", "--nodes", str(LAB_NODES), timeout=600)
    lab("heal", "all", timeout=300)
    assert LAB_INVENTORY.exists()
    yield LAB_INVENTORY
    lab("heal", "all", check=False, timeout=300)


@pytest.fixture
def green_lab(lab_inventory):
    """The lab with every fault healed and its last minute of metrics and alerts clean again."""
    lab("heal", "all", timeout=300)
    wait_green()
    return lab_inventory


@pytest.fixture
def inventory_copy(lab_inventory, tmp_path):
    """A writable copy of the lab inventory: edit(data) -> path."""
    def make(edit=None):
        data = yaml.safe_load(lab_inventory.read_text())
        if edit:
            edit(data)
        path = tmp_path / "hosts.yml"
        path.write_text(yaml.safe_dump(data))
        return path
    return make


@pytest.fixture
def report_dir(tmp_path):
    return tmp_path / "reports"


