import os

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.qflow.ops.plugins.filter.paths import output_dir


def test_checkout_playbooks_dir_gives_a_sibling(tmp_path):
    (tmp_path / "playbooks").mkdir()
    assert output_dir(str(tmp_path / "playbooks"), "reports") == os.path.realpath(str(tmp_path / "reports"))


def test_installed_collection_writes_to_the_run_directory(tmp_path):
    installed = tmp_path / "cp" / "ansible_collections" / "qflow" / "ops" / "playbooks"
    installed.mkdir(parents=True)
    cwd = tmp_path / "ops-work"
    assert output_dir(str(installed), "incidents", cwd=str(cwd)) == os.path.realpath(str(cwd / "incidents"))
    assert "ansible_collections" not in output_dir(str(installed), "reports")


@pytest.mark.parametrize("name", ["", "..", "a/b"])
def test_bad_name(tmp_path, name):
    with pytest.raises(AnsibleFilterError):
        output_dir(str(tmp_path), name)
