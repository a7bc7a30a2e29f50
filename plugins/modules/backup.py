#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: backup
short_description: Create a consistent, verified backup of a Qflow node
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Archives the Qflow data dir and config file of one node into
    C(<backup_dir>/qflow-backup-<node_id>-<YYYYmmddTHHMMSSZ>.tar.gz) and records it in C(<backup_dir>/catalog.json).
  - Every C(*.db) SQLite file in the data dir (the node's C(state.db) is in WAL mode) is copied with SQLite's online
    backup API, so the copy is consistent while the node keeps running. Its C(-wal) and C(-shm) files are not archived
    because the copy is already complete. Other files are copied as they are. Symlinks and special files are skipped
    and listed in RV(backup.skipped_files).
  - The archive holds C(manifest.json) with the size and sha256 of every member, the data dir under C(data/), and the
    config under C(config/qflow-config.yaml).
  - The archive is built under a temporary name, fsynced and renamed into place, and only then added to the catalog.
    On any error the temporary files are removed, so neither the directory nor the catalog ever holds a partial
    archive. Archive and catalog are mode C(0600); a missing backup dir is created with mode C(0700).
  - With O(max_age), nothing is done (not changed) while a completed and verified backup of this node younger than
    O(max_age) exists, which makes the task idempotent for scheduled runs.
  - Use M(qflow.ops.backup_info) to list and re-verify backups.
extends_documentation_fragment:
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Predicts whether a backup would be created (honouring O(max_age)) and writes nothing, not even the backup dir.
  diff_mode:
    support: full
    details:
      - Shows the latest backup id and the number of catalogued backups before and after.
options:
  node_id:
    description:
      - Node name used in the archive name, the manifest and the catalog.
      - Letters, digits, V(.), V(_) and V(-) only.
      - Defaults to the target's short host name.
    type: str
  data_dir:
    description:
      - The node's data dir (inventory variable C(qflow_data_dir)). The whole tree is archived under C(data/).
      - If it is missing the module fails and writes nothing.
    type: path
    default: /var/lib/qflow
  config_path:
    description:
      - The node's config file (inventory variable C(qflow_config_path)), archived as C(config/qflow-config.yaml).
      - If it is missing the module fails and writes nothing.
    type: path
    default: /etc/qflow/qflow-config.yaml
  env_path:
    description:
      - The node's env file (inventory variable C(qflow_env_path)). Only read when O(include_env_file=true).
    type: path
    default: /etc/qflow/qflow.env
  include_env_file:
    description:
      - Also archive the env file as C(config/qflow.env).
      - B(Risk:) the env file holds secrets (C(QFLOW_JWT_SECRET), C(QFLOW_ENCRYPTION_KEY)). Anyone who can read the
        archive can then forge operator tokens and decrypt data. Archives are mode C(0600), but copies made off the host
        inherit whatever protection the copy gets. Prefer keeping secrets in a vault and leave this off.
    type: bool
    default: false
  backup_dir:
    description:
      - Directory holding the archives and C(catalog.json) (inventory variable C(qflow_backup_dir)).
      - Created with mode C(0700) when missing.
    type: path
    default: /var/backups/qflow
  max_age:
    description:
      - Skip the backup (not changed, RV(skipped_reason) set) when a completed and verified backup of this node younger than this
        duration exists and its archive is still present.
      - A number with an optional unit V(s), V(m), V(h), V(d) or V(w), for example V(24h).
      - When not set, every run creates a new backup.
    type: str
  verify:
    description:
      - Verify the new archive before publishing it (archive checksum, every member against the manifest,
        C(PRAGMA integrity_check) on SQLite files) and record C(verified=true) and C(verified_at) in the catalog.
      - A new archive that fails verification is discarded and the module fails.
      - Backups created with V(false) never satisfy O(max_age).
    type: bool
    default: true
notes:
  - Run with C(become=true) when the data dir, config or backup dir belong to another user.
  - Restoring is not done by this module; the archive is a plain tar.gz whose C(manifest.json) lists every checksum.
seealso:
  - module: qflow.ops.backup_info
'''

EXAMPLES = r'''
- name: Daily backup, skipped when a verified one from the last 24 hours exists
  qflow.ops.backup:
    data_dir: "{{ qflow_data_dir }}"
    config_path: "{{ qflow_config_path }}"
    backup_dir: "{{ qflow_backup_dir }}"
    max_age: 24h
  become: true
  register: qflow_backup

- name: Show what was done
  ansible.builtin.debug:
    msg: "{{ qflow_backup.backup.id if qflow_backup.changed else qflow_backup.skipped_reason }}"

- name: Backup before maintenance, secrets included (archive must then be protected like the env file)
  qflow.ops.backup:
    node_id: "{{ inventory_hostname_short }}"
    include_env_file: true
  become: true
'''

RETURN = r'''
backup:
  description:
    - The backup that was created. Not returned when nothing was created.
  returned: changed and not check mode
  type: dict
  contains:
    id:
      description: Backup id, C(<node_id>-<YYYYmmddTHHMMSSZ>).
      type: str
      sample: qflow-node-1-20261127T031245Z
    path:
      description: Absolute path of the archive.
      type: str
      sample: /var/backups/qflow/qflow-backup-qflow-node-1-20261127T031245Z.tar.gz
    created:
      description: Creation time, ISO 8601 UTC.
      type: str
      sample: '2026-11-27T03:12:45.123Z'
    size:
      description: Archive size in bytes.
      type: int
      sample: 482133
    sha256:
      description: SHA-256 of the archive, as recorded in the catalog.
      type: str
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    files:
      description: Number of files in the archive, not counting C(manifest.json).
      type: int
      sample: 4
    verified:
      description: Whether the archive was verified before it was published.
      type: bool
      sample: true
    verified_at:
      description: Verification time, ISO 8601 UTC, or null.
      type: str
      sample: '2026-11-27T03:12:46.002Z'
    qflow_version:
      description: Qflow version read from the state database, when it records one.
      type: str
      returned: when known
      sample: 1.4.2
    skipped_files:
      description: Data dir entries that were not archived (symlinks, special files), with the reason.
      type: list
      elements: str
      sample: ['data/current (symlink)']
    excluded:
      description: Files deliberately left out, with the reason (the env file unless O(include_env_file=true)).
      type: list
      elements: str
      sample: ['/etc/qflow/qflow.env (env file with secrets; include_env_file=false)']
skipped_reason:
  description: Why no backup was created (the recent verified backup that satisfies O(max_age)).
  returned: when a recent verified backup made a new one unnecessary
  type: str
  sample: backup qflow-node-1-20261127T031245Z (2h05m old) is completed, verified and younger than max_age 24h
catalog_path:
  description: Path of the catalog.
  returned: always
  type: str
  sample: /var/backups/qflow/catalog.json
diff:
  description: Latest backup id and number of catalogued backups, before and after.
  returned: always
  type: dict
  contains:
    before:
      description: State before the task.
      type: dict
      sample: {latest_backup: null, count: 0}
    after:
      description: State after the task (predicted in check mode).
      type: dict
      sample: {latest_backup: qflow-node-1-20261127T031245Z, count: 1}
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: created backup qflow-node-1-20261127T031245Z (4 files, 482133 bytes, verified)
'''

import os
import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils import _backup as engine
from ansible_collections.qflow.ops.plugins.module_utils._time import parse_duration, utcnow


def main():
    module = AnsibleModule(
        argument_spec=dict(
            node_id=dict(type='str'),
            data_dir=dict(type='path', default='/var/lib/qflow'),
            config_path=dict(type='path', default='/etc/qflow/qflow-config.yaml'),
            env_path=dict(type='path', default='/etc/qflow/qflow.env'),
            include_env_file=dict(type='bool', default=False),
            backup_dir=dict(type='path', default='/var/backups/qflow'),
            max_age=dict(type='str'),
            verify=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    node_id = p['node_id'] or engine.default_node_id(socket.gethostname())
    backup_dir = p['backup_dir']
    result = dict(changed=False, catalog_path=engine.catalog_path(backup_dir))

    max_age = None
    if p['max_age'] is not None:
        try:
            max_age = parse_duration(p['max_age'])
        except ValueError as exc:
            module.fail_json(msg='max_age: %s' % exc, **result)

    if not engine.NODE_ID_RE.match(node_id):
        module.fail_json(msg='node_id %r cannot be used in a file name: use letters, digits, ".", "_" and "-" only' % node_id, **result)

    now = utcnow()
    try:
        engine.check_sources(p['data_dir'], p['config_path'], p['env_path'], p['include_env_file'])
        listing = engine.list_backups(backup_dir, now)
    except engine.BackupError as exc:
        module.fail_json(msg=str(exc), **result)

    backups = listing['backups']
    current = [b for b in backups if b.get('status') == 'completed']
    latest = engine.latest_completed(backups)
    before = {'latest_backup': latest['id'] if latest else None, 'count': len(current)}

    if max_age is not None:
        recent = engine.latest_completed(backups, node_id=node_id, verified_only=True)
        if recent is not None and recent['age_seconds'] is not None and -60 <= recent['age_seconds'] < max_age \
                and recent.get('size') == _size(recent['path']):
            result['skipped_reason'] = ('backup %s (%s old) is completed, verified and younger than max_age %s'
                                        % (recent['id'], engine.human_age(recent['age_seconds']), p['max_age']))
            result['msg'] = 'no backup needed: ' + result['skipped_reason']
            result['diff'] = {'before': before, 'after': dict(before)}
            module.exit_json(**result)

    if module.check_mode:
        predicted = engine.predict_backup_id(backup_dir, node_id, now)
        result['changed'] = True
        result['msg'] = 'would create backup %s in %s' % (predicted, backup_dir)
        result['diff'] = {'before': before, 'after': {'latest_backup': predicted, 'count': len(current) + 1}}
        module.exit_json(**result)

    try:
        created = engine.create_backup(backup_dir, p['data_dir'], p['config_path'], node_id,
                                       env_path=p['env_path'], include_env_file=p['include_env_file'],
                                       verify=p['verify'], now=now)
    except engine.BackupError as exc:
        module.fail_json(msg=str(exc), **result)

    backup = dict((k, created.get(k)) for k in ('id', 'path', 'created', 'size', 'sha256', 'files', 'verified', 'verified_at'))
    if created.get('qflow_version'):
        backup['qflow_version'] = created['qflow_version']
    backup['skipped_files'] = created['skipped_files']
    backup['excluded'] = created['excluded']
    result['changed'] = True
    result['backup'] = backup
    state = 'verified' if backup['verified'] else 'not verified'
    result['msg'] = 'created backup %s (%d files, %d bytes, %s)' % (backup['id'], backup['files'], backup['size'], state)
    result['diff'] = {'before': before, 'after': {'latest_backup': backup['id'], 'count': len(current) + 1}}
    module.exit_json(**result)


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


if __name__ == '__main__':
    main()
