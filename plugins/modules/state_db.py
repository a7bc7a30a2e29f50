#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: state_db
short_description: Check and optimise the SQLite state database of a Qflow node
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - The runbook's weekly "database optimisation" step, on the node's C(state.db) (node contract, files).
  - Always runs C(PRAGMA quick_check) first and fails, naming the first problems, when the database is damaged;
    nothing is changed then. Restore from a backup (M(qflow.ops.backup) with O(qflow.ops.backup#module:state=restored)).
  - O(state=optimized) rebuilds the database with C(VACUUM) (then C(PRAGMA optimize) and a WAL checkpoint) when the
    free pages are more than O(max_free_ratio) of the file. Otherwise nothing is done and the result is not changed.
  - O(state=checked) only reads.
  - The node keeps running. SQLite locks the database while C(VACUUM) copies it, so writes of the node wait for up to
    O(timeout) seconds; on a large database run it in the maintenance window.
extends_documentation_fragment:
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the statistics and reports whether C(VACUUM) would run.
  diff_mode:
    support: full
    details:
      - Shows pages, free pages and size before and after.
  idempotent:
    description: When run twice with the same arguments, the second run changes nothing.
    support: full
    details:
      - After a C(VACUUM) the database has no free pages, so a second run finds nothing to do.
options:
  data_dir:
    description:
      - The node's data directory (inventory variable C(qflow_data_dir)).
    type: path
    default: /var/lib/qflow
  state:
    description:
      - V(optimized) rebuilds when needed; V(checked) only reads.
    type: str
    choices: [optimized, checked]
    default: optimized
  max_free_ratio:
    description:
      - Rebuild when C(free pages / pages) is above this ratio (0 to 1).
    type: float
    default: 0.1
  timeout:
    description:
      - Seconds to wait for a database lock.
    type: float
    default: 30
notes:
  - Run with C(become=true) when the data directory belongs to the qflow user.
seealso:
  - module: qflow.ops.backup
'''

EXAMPLES = r'''
- name: Optimise the state database when a tenth of it is free pages
  qflow.ops.state_db:
    data_dir: "{{ qflow_data_dir }}"
    state: optimized

- name: Only check its integrity
  qflow.ops.state_db:
    data_dir: "{{ qflow_data_dir }}"
    state: checked
'''

RETURN = r'''
path:
  description: The state database.
  returned: always
  type: str
  sample: /var/lib/qflow/state.db
before:
  description: Statistics before any change.
  returned: success
  type: dict
  sample: {"pages": 1200, "free_pages": 310, "page_size": 4096, "size_bytes": 4915200, "free_ratio": 0.2583,
           "wal_bytes": 4152, "integrity": "ok"}
after:
  description: Statistics after the change (equal to RV(before) when nothing ran or in check mode).
  returned: success
  type: dict
  sample: {"pages": 890, "free_pages": 0, "page_size": 4096, "size_bytes": 3645440, "free_ratio": 0.0,
           "wal_bytes": 0, "integrity": "ok"}
vacuumed:
  description: Whether C(VACUUM) ran (would run, in check mode).
  returned: success
  type: bool
  sample: true
freed_bytes:
  description: Bytes the file shrank by (predicted from the free pages in check mode).
  returned: success
  type: int
  sample: 1269760
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils import _state_db as engine


def _diff_text(path, s):
    return '%s: %d pages, %d free (%.1f%%), %d bytes\n' % (path, s['pages'], s['free_pages'], s['free_ratio'] * 100,
                                                           s['size_bytes'])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            data_dir=dict(type='path', default='/var/lib/qflow'),
            state=dict(type='str', default='optimized', choices=['optimized', 'checked']),
            max_free_ratio=dict(type='float', default=0.1),
            timeout=dict(type='float', default=30),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not 0 <= p['max_free_ratio'] <= 1:
        module.fail_json(msg='max_free_ratio must be between 0 and 1, got %s' % p['max_free_ratio'], changed=False)
    try:
        path = engine.db_path(p['data_dir'])
        before = engine.stats(path, p['timeout'])
        if before['integrity'] != 'ok':
            module.fail_json(msg='state database %s failed PRAGMA quick_check: %s. Nothing was changed; restore the '
                                 'node from its last verified backup (qflow.ops.backup state=restored).'
                                 % (path, before['integrity']), changed=False, path=path, before=before)
        vacuum = p['state'] == 'optimized' and before['free_pages'] > 0 and before['free_ratio'] > p['max_free_ratio']
        after = before
        if vacuum and not module.check_mode:
            engine.optimise(path, p['timeout'])
            after = engine.stats(path, p['timeout'])
    except engine.StateDbError as exc:
        module.fail_json(msg=str(exc), changed=False)
    predicted = dict(before, pages=before['pages'] - before['free_pages'], free_pages=0, free_ratio=0.0,
                     size_bytes=(before['pages'] - before['free_pages']) * before['page_size'])
    shown_after = predicted if vacuum and module.check_mode else after
    module.exit_json(changed=vacuum, path=path, before=before, after=after, vacuumed=vacuum,
                     freed_bytes=max(before['size_bytes'] - shown_after['size_bytes'], 0) if vacuum else 0,
                     diff={'before': _diff_text(path, before), 'after': _diff_text(path, shown_after)})


if __name__ == '__main__':
    main()
