# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a procedure keeps its records on the controller."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible.errors import AnsibleFilterError


def output_dir(playbook_dir, name, cwd=None):
    """The controller directory <name> (reports, incidents) of a procedure run.

    From a checkout (playbooks/<procedure>.yml) it sits beside the playbooks directory; a playbook of an installed
    collection (.../ansible_collections/qflow/ops/playbooks) must not write into the installed collection, so the
    directory is then <name> in the directory the run was started from.
    """
    if not name or os.sep in name or name in ('.', '..'):
        raise AnsibleFilterError('output_dir: name must be a plain directory name, got %r' % (name,))
    parts = os.path.normpath(str(playbook_dir)).split(os.sep)
    if 'ansible_collections' in parts:
        return os.path.realpath(os.path.join(cwd or os.getcwd(), name))
    return os.path.realpath(os.path.join(str(playbook_dir), '..', name))


class FilterModule(object):
    def filters(self):
        return {'output_dir': output_dir}
