#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: backup_info
short_description: List and verify the Qflow backups of a node
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Reads C(<backup_dir>/catalog.json) written by M(qflow.ops.backup) and reports every backup, newest first, with
    its age, size, checksum and verification state.
  - Catalog entries whose archive file is gone get RV(backups[].status=missing). Archives in the directory that the
    catalog does not list are reported in RV(orphaned).
  - Optionally verifies archives. It checks the archive sha256 against the catalog, every member against C(manifest.json)
    (present, no extra, same sha256 and size), and C(PRAGMA integrity_check) on SQLite files. Results are returned in
    RV(verification) and never written to the catalog.
  - A missing backup dir is not an error; it gives RV(backups=[]) and RV(latest=null).
extends_documentation_fragment:
  - qflow.ops._attributes
  - qflow.ops._attributes.INFO_MODULE
options:
  backup_dir:
    description:
      - Directory holding the archives and C(catalog.json) (inventory variable C(qflow_backup_dir)).
    type: path
    default: /var/backups/qflow
  backup_id:
    description:
      - Report on this backup only (RV(backups) then holds just this one) and verify it when O(verify=true).
      - An id that is not in the catalog makes the module fail and list the known ids.
    type: str
  verify:
    description:
      - Verify O(backup_id), or when O(backup_id) is not set the latest completed backup.
    type: bool
    default: false
  verify_all:
    description:
      - Verify every catalogued backup (missing archives are reported as failed verifications).
    type: bool
    default: false
notes:
  - Verification reads each archive fully; SQLite members are checked in memory (on Python older than 3.11 through a
    temporary file in the system temp dir, removed afterwards).
seealso:
  - module: qflow.ops.backup
'''

EXAMPLES = r'''
- name: Read the backup catalog and verify the newest backup
  qflow.ops.backup_info:
    backup_dir: "{{ qflow_backup_dir }}"
    verify: true
  become: true
  register: qflow_backups

- name: Fail when the newest backup is older than a day or broken
  ansible.builtin.assert:
    that:
      - qflow_backups.latest is not none
      - qflow_backups.latest_age_seconds < 86400
      - qflow_backups.verification[qflow_backups.latest.id].ok
    fail_msg: "{{ qflow_backups.verification | default({}) }}"

- name: Verify every backup
  qflow.ops.backup_info:
    verify_all: true
  become: true
'''

RETURN = r'''
backups:
  description: Catalogued backups, newest first (only O(backup_id) when given).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Backup id.
      type: str
      sample: qflow-node-1-20261127T031245Z
    file:
      description: Archive file name inside O(backup_dir).
      type: str
      sample: qflow-backup-qflow-node-1-20261127T031245Z.tar.gz
    path:
      description: Absolute archive path.
      type: str
      sample: /var/backups/qflow/qflow-backup-qflow-node-1-20261127T031245Z.tar.gz
    node_id:
      description: Node the backup was taken from.
      type: str
      sample: qflow-node-1
    created:
      description: Creation time, ISO 8601 UTC.
      type: str
      sample: '2026-11-27T03:12:45.123Z'
    age_seconds:
      description: Seconds since creation.
      type: float
      sample: 7512.4
    size:
      description: Archive size in bytes.
      type: int
      sample: 482133
    sha256:
      description: SHA-256 of the archive recorded at creation.
      type: str
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    status:
      description: V(completed), or V(missing) when the archive file is gone.
      type: str
      sample: completed
    verified:
      description: Whether the backup was verified when it was created (see RV(verification) for this run's result).
      type: bool
      sample: true
    verified_at:
      description: When it was verified at creation, or null.
      type: str
      sample: '2026-11-27T03:12:46.002Z'
    files:
      description: Number of files in the archive, not counting C(manifest.json).
      type: int
      sample: 4
latest:
  description: The newest backup with status V(completed) (same keys as an element of RV(backups)), or null.
  returned: always
  type: dict
  sample: {id: qflow-node-1-20261127T031245Z, status: completed, verified: true}
latest_age_seconds:
  description: Age of RV(latest) in seconds, or null.
  returned: always
  type: float
  sample: 7512.4
verification:
  description: Verification results keyed by backup id. Empty unless O(verify) or O(verify_all) is set.
  returned: always
  type: dict
  sample:
    qflow-node-1-20261127T031245Z:
      ok: false
      errors: ['qflow-backup-qflow-node-1-20261127T031245Z.tar.gz: data/state.db does not match the manifest (...)']
      checked_files: 2
orphaned:
  description: Archive file names in O(backup_dir) that the catalog does not list.
  returned: always
  type: list
  elements: str
  sample: ['qflow-backup-qflow-node-1-20261120T031200Z.tar.gz']
count:
  description: Number of entries in RV(backups).
  returned: always
  type: int
  sample: 7
catalog_path:
  description: Path of the catalog that was read.
  returned: always
  type: str
  sample: /var/backups/qflow/catalog.json
verification_failed:
  description: Ids whose verification failed in this run.
  returned: always
  type: list
  elements: str
  sample: []
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils import _backup as engine
from ansible_collections.qflow.ops.plugins.module_utils._time import utcnow

_PUBLIC_KEYS = ('id', 'file', 'path', 'node_id', 'created', 'age_seconds', 'size', 'sha256', 'status', 'verified', 'verified_at', 'files')


def _public(entry):
    return dict((k, entry.get(k)) for k in _PUBLIC_KEYS)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            backup_dir=dict(type='path', default='/var/backups/qflow'),
            backup_id=dict(type='str'),
            verify=dict(type='bool', default=False),
            verify_all=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    backup_dir = p['backup_dir']
    result = dict(changed=False, catalog_path=engine.catalog_path(backup_dir))
    try:
        listing = engine.list_backups(backup_dir, utcnow())
    except engine.BackupError as exc:
        module.fail_json(msg=str(exc), **result)

    backups = [_public(b) for b in listing['backups']]
    latest = engine.latest_completed(backups)

    selected = backups
    if p['backup_id'] is not None:
        selected = [b for b in backups if b['id'] == p['backup_id']]
        if not selected:
            known = [b['id'] for b in backups]
            if known:
                hint = 'known ids (newest first%s): %s' % (', first 10 of %d' % len(known) if len(known) > 10 else '', ', '.join(known[:10]))
            else:
                hint = 'the catalog %s lists no backups' % result['catalog_path']
            module.fail_json(msg='backup_id %s is not in the catalog of %s; %s' % (p['backup_id'], backup_dir, hint), **result)

    to_verify = []
    if p['verify_all']:
        to_verify = list(selected)
    elif p['verify']:
        if p['backup_id'] is not None:
            to_verify = list(selected)
        elif latest is not None:
            to_verify = [latest]

    verification = {}
    for entry in to_verify:
        verification[entry['id']] = engine.verify_entry(backup_dir, entry)

    result.update(
        backups=selected,
        latest=latest,
        latest_age_seconds=latest['age_seconds'] if latest else None,
        verification=verification,
        verification_failed=[k for k, v in verification.items() if not v['ok']],
        orphaned=listing['orphaned'],
        count=len(selected),
    )
    module.exit_json(**result)


if __name__ == '__main__':
    main()
