#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: backup
short_description: Create, restore, test-restore and prune consistent, verified backups of a Qflow node
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
  - With O(state=restored), restores the parts O(restore_parts) of backup O(backup_id). The archive is verified first; a
    backup that fails verification or an unknown O(backup_id) makes the module fail without changing anything.
    When the live content already equals the archive for those parts (sha256 of the config, row-set digests of the
    tables, file digests of the data dir) nothing is done (not changed). Otherwise a safety backup of the current state
    is taken first (a normal backup recorded in the catalog with C(kind=safety), RV(safety_backup_id)). When the state
    database being replaced is damaged (it fails C(PRAGMA quick_check)), it cannot be backed up consistently, so its files
    are then kept byte for byte in RV(damaged_copy) instead, with a warning.
  - Whole restore (V(config), V(data)) writes every differing file to a temporary file beside its target and renames it
    into place, removes the data dir files that are not in the archive and the C(-wal)/C(-shm) files of each replaced
    database. B(The module does not stop the service) - the playbook must stop the node before a whole restore and
    start it afterwards. Restoring V(flows) or V(executions) replaces only the rows of those tables of C(state.db) in one
    SQLite transaction, which is safe while the node runs.
  - With O(state=test_restored), extracts the backup into the scratch directory O(restore_target), runs
    C(PRAGMA integrity_check) on every database and compares row counts per table and file checksums with the
    manifest. The node's data dir and config are never touched. To test a restore on a scratch node, run
    O(state=restored) on that node instead.
  - With O(ipfs_api_url), the node's IPFS content is part of the backup. Each DAG the archived C(state.db) flows table
    references (column C(ipfs_cid)), or every recursive pin of the daemon when that column does not exist, is exported
    with C(dag/export) as C(ipfs/<cid>.car) and listed with its sha256 in the manifest. A restore of V(data) or
    V(flows) re-imports (C(dag/import)) and pins the roots the daemon does not pin; when every root is pinned nothing is
    imported. Without O(ipfs_api_url) IPFS is left alone, as before.
  - With O(state=pruned), applies retention to the backups of O(node_id) in O(backup_dir), see O(keep_daily) and
    O(keep_weekly). The catalog is rewritten first, then the archives are deleted, so an interruption can leave
    orphaned archives (reported by M(qflow.ops.backup_info)) but never catalog entries without an archive.
extends_documentation_fragment:
  - qflow.ops._api.HTTP
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Predicts whether a backup would be created (honouring O(max_age)) and writes nothing, not even the backup dir.
      - For O(state=restored), O(state=test_restored) and O(state=pruned), computes and reports what would change and
        writes nothing (scratch copies go to the system temp dir and are removed before returning).
  diff_mode:
    support: full
    details:
      - Shows the latest backup id and the number of catalogued backups before and after.
      - With O(state=restored), the checksums, file digests and table row counts that differ, before and after.
      - With O(state=pruned), the backup ids of the node before and after.
options:
  state:
    description:
      - V(present) creates a backup (the behaviour described above).
      - V(restored) restores O(restore_parts) of the backup O(backup_id) onto this node.
      - V(test_restored) extracts the backup O(backup_id) into O(restore_target) and compares it with its manifest.
        It only writes to that scratch directory and always reports not changed.
      - V(pruned) deletes the backups of O(node_id) that O(keep_daily) and O(keep_weekly) do not keep.
    type: str
    choices: [present, restored, test_restored, pruned]
    default: present
  backup_id:
    description:
      - The backup to restore or test, as listed by M(qflow.ops.backup_info).
      - V(latest) is the newest completed backup of O(node_id) that is not a safety backup taken by a restore.
      - Required with O(state=restored) and O(state=test_restored).
    type: str
  restore_parts:
    description:
      - What to restore with O(state=restored).
      - V(config) is the config file at O(config_path).
      - V(data) is the whole data dir (every file, so every table of C(state.db)); the node must be stopped.
      - V(flows) replaces the rows of the tables C(flows), C(ownership) and C(permissions) of C(state.db) (a flow's owner and
        grants are stored beside it); V(executions) replaces the rows of the table C(executions). Both are safe while
        the node runs and are ignored when V(data) is also given.
      - The default V(config) + V(data) is a whole restore.
    type: list
    elements: str
    choices: [config, flows, executions, data]
    default: [config, data]
  restore_target:
    description:
      - Scratch directory for O(state=test_restored). It must not overlap O(data_dir), the config dir or O(backup_dir),
        and must be new, empty or hold only an earlier test restore (which is replaced).
      - When not set, a temporary directory is used and removed afterwards.
    type: path
  keep_daily:
    description:
      - With O(state=pruned), keep the newest backup of each of the last O(keep_daily) days (UTC) that have a backup.
      - Days without a backup are not counted, so a gap in the schedule does not delete older backups.
      - At least one of O(keep_daily) and O(keep_weekly) is required with O(state=pruned). The newest backup is always kept.
    type: int
  keep_weekly:
    description:
      - With O(state=pruned), keep the newest backup of each of the last O(keep_weekly) ISO weeks that have a backup.
      - Combined with O(keep_daily) as a union.
    type: int
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
  ipfs_api_url:
    description:
      - Root URL of the node's IPFS RPC API (inventory variable C(qflow_ipfs_api_url)), for example
        V(http://127.0.0.1:5001). When set, the node's IPFS DAGs are exported into the archive and re-imported by a
        restore (see above); O(timeout), O(validate_certs) and O(ca_path) apply to it.
      - If not set, the value of the E(QFLOW_IPFS_API_URL) environment variable is used. When neither is set, IPFS is
        not backed up.
    type: str
notes:
  - Run with C(become=true) when the data dir, config or backup dir belong to another user.
  - The archive is a plain tar.gz whose C(manifest.json) lists every checksum (and the row count of every table).
  - The module never stops or starts the service. Stop the node before a whole restore (O(restore_parts) with V(data)).
  - Safety backups are ordinary backups for O(state=pruned).
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

- name: Put the flows back from the latest backup (online, only the flow tables change)
  qflow.ops.backup:
    state: restored
    backup_id: latest
    restore_parts: [flows]
  become: true

- name: Test that the latest backup restores (scratch directory, the node is not touched)
  qflow.ops.backup:
    state: test_restored
    backup_id: latest
  become: true
  register: qflow_test_restore

- name: Keep 7 daily and 4 weekly backups
  qflow.ops.backup:
    state: pruned
    keep_daily: 7
    keep_weekly: 4
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
    ipfs:
      description:
        - The IPFS DAGs exported into the archive (C(ipfs/<cid>.car)) and where their list came from
          (V(state.db flows.ipfs_cid) or V(pin/ls)).
      type: dict
      returned: with O(ipfs_api_url)
      sample: {roots: [bafkreigye4guq6jj4dx3cjajnd6u6k4wjshdqnml743nmyf4ajg3l76kqa], source: state.db flows.ipfs_cid}
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
  description:
    - With O(state=present), latest backup id and number of catalogued backups, before and after.
    - With O(state=restored), what differs between the node and the backup (config sha256, data file sha256, table rows
      and digests), before and after.
    - With O(state=pruned), the backup ids of the node before and after.
  returned: always except with O(state=test_restored)
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
backup_id:
  description: The backup that was restored or tested (V(latest) resolved).
  returned: with O(state=restored) and O(state=test_restored)
  type: str
  sample: qflow-node-1-20261127T031245Z
safety_backup_id:
  description:
    - Id of the safety backup taken before restoring, or null when nothing was changed (or in check mode), or when the
      state being replaced was damaged (see RV(damaged_copy)).
  returned: with O(state=restored)
  type: str
  sample: qflow-node-1-20261127T041002Z
damaged_copy:
  description:
    - Path of C(damaged-<node_id>-<time>.tar.gz) in O(backup_dir) - the data dir and config exactly as they were -
      when a whole restore replaced a state database that does not pass C(PRAGMA quick_check) and so could not get a
      safety backup (the data corruption procedure). Kept as evidence; it is not in the catalog and is not restorable
      by this module.
  returned: when the replaced state was damaged
  type: str
  sample: /var/backups/qflow/damaged-qflow-node-1-20261127T041002Z.tar.gz
restored:
  description: What was restored (what would be in check mode). Empty lists and dicts when the node already matched.
  returned: with O(state=restored)
  type: dict
  contains:
    parts:
      description: The parts compared (V(flows)/V(executions) are dropped when V(data) is given).
      type: list
      elements: str
      sample: [config, data]
    config:
      description: Whether the config file differed and was replaced.
      type: bool
      sample: false
    files:
      description: Archive members (C(data/...)) whose file in the data dir differed and was replaced.
      type: list
      elements: str
      sample: [data/state.db]
    removed:
      description: Data dir files that are not in the archive and were removed.
      type: list
      elements: str
      sample: [data/flows/flow-9.json]
    tables:
      description: Tables whose rows differed and were replaced, with row counts before and after.
      type: dict
      sample: {flows: {rows_before: 2, rows_after: 3}}
    ipfs:
      description: IPFS roots re-imported from the archive and pinned.
      returned: with O(ipfs_api_url)
      type: list
      elements: str
      sample: [bafkreigye4guq6jj4dx3cjajnd6u6k4wjshdqnml743nmyf4ajg3l76kqa]
comparison:
  description: Result of the test restore.
  returned: with O(state=test_restored)
  type: dict
  contains:
    tables:
      description:
        - Per table, rows recorded in the manifest at backup time (null for archives without row counts) and rows
          found in the restored database. Tables of databases other than C(state.db) are named C(<file>:<table>).
      type: dict
      sample: {flows: {archived_rows: 3, restored_rows: 3}}
    files_ok:
      description: Whether every restored file has the sha256 recorded in the manifest.
      type: bool
      sample: true
    errors:
      description: Every mismatch or failed C(PRAGMA integrity_check). The module fails when it is not empty.
      type: list
      elements: str
      sample: []
restore_target:
  description: Scratch directory holding the test restore, or null when a temporary directory was used and removed.
  returned: with O(state=test_restored)
  type: str
  sample: /var/tmp/qflow-restore-test
kept:
  description: Backups of O(node_id) kept by retention, with the reasons (V(newest), V(daily <date>), V(weekly <ISO week>)).
  returned: with O(state=pruned)
  type: dict
  sample: {qflow-node-1-20261127T031245Z: [newest, daily 2026-11-27, weekly 2026-W48]}
would_delete:
  description: Backup ids that would be deleted.
  returned: with O(state=pruned) in check mode
  type: list
  elements: str
  sample: [qflow-node-1-20261101T031245Z]
deleted:
  description: Backup ids whose archives were deleted and which were dropped from the catalog.
  returned: with O(state=pruned) when not in check mode
  type: list
  elements: str
  sample: [qflow-node-1-20261101T031245Z]
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
from ansible_collections.qflow.ops.plugins.module_utils._ipfs import IpfsClient, ipfs_argument_spec
from ansible_collections.qflow.ops.plugins.module_utils._time import parse_duration, utcnow


def main():
    argument_spec = ipfs_argument_spec('ipfs_api_url')
    argument_spec.update(
        node_id=dict(type='str'),
        data_dir=dict(type='path', default='/var/lib/qflow'),
        config_path=dict(type='path', default='/etc/qflow/qflow-config.yaml'),
        env_path=dict(type='path', default='/etc/qflow/qflow.env'),
        include_env_file=dict(type='bool', default=False),
        backup_dir=dict(type='path', default='/var/backups/qflow'),
        max_age=dict(type='str'),
        verify=dict(type='bool', default=True),
        state=dict(type='str', default='present', choices=['present', 'restored', 'test_restored', 'pruned']),
        backup_id=dict(type='str'),
        restore_parts=dict(type='list', elements='str', default=['config', 'data'],
                           choices=['config', 'flows', 'executions', 'data']),
        restore_target=dict(type='path'),
        keep_daily=dict(type='int'),
        keep_weekly=dict(type='int'),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[
            ('state', 'restored', ('backup_id',)),
            ('state', 'test_restored', ('backup_id',)),
            ('state', 'pruned', ('keep_daily', 'keep_weekly'), True),
        ],
        supports_check_mode=True,
    )
    p = module.params
    node_id = p['node_id'] or engine.default_node_id(socket.gethostname())
    backup_dir = p['backup_dir']
    result = dict(changed=False, catalog_path=engine.catalog_path(backup_dir))
    if not engine.NODE_ID_RE.match(node_id):
        module.fail_json(msg='node_id %r cannot be used in a file name: use letters, digits, ".", "_" and "-" only' % node_id, **result)
    if p['state'] == 'restored':
        _restored(module, p, node_id, result)
    elif p['state'] == 'test_restored':
        _test_restored(module, p, node_id, result)
    elif p['state'] == 'pruned':
        _pruned(module, p, node_id, result)
    _present(module, p, node_id, result)


def _present(module, p, node_id, result):
    backup_dir = p['backup_dir']

    max_age = None
    if p['max_age'] is not None:
        try:
            max_age = parse_duration(p['max_age'])
        except ValueError as exc:
            module.fail_json(msg='max_age: %s' % exc, **result)

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
                                       verify=p['verify'], now=now, ipfs=_ipfs_client(p))
    except engine.BackupError as exc:
        module.fail_json(msg=str(exc), **result)

    backup = dict((k, created.get(k)) for k in ('id', 'path', 'created', 'size', 'sha256', 'files', 'verified', 'verified_at'))
    if created.get('qflow_version'):
        backup['qflow_version'] = created['qflow_version']
    backup['skipped_files'] = created['skipped_files']
    backup['excluded'] = created['excluded']
    if created.get('ipfs') is not None:
        backup['ipfs'] = created['ipfs']
    result['changed'] = True
    result['backup'] = backup
    state = 'verified' if backup['verified'] else 'not verified'
    result['msg'] = 'created backup %s (%d files, %d bytes, %s)' % (backup['id'], backup['files'], backup['size'], state)
    result['diff'] = {'before': before, 'after': {'latest_backup': backup['id'], 'count': len(current) + 1}}
    module.exit_json(**result)


def _restored(module, p, node_id, result):
    try:
        done = engine.restore_backup(p['backup_dir'], p['backup_id'], p['data_dir'], p['config_path'], node_id,
                                     parts=p['restore_parts'], check_mode=module.check_mode, ipfs=_ipfs_client(p))
    except engine.BackupError as exc:
        module.fail_json(msg=str(exc), **result)
    before = {}
    after = {}
    if done['config']:
        before['config_sha256'] = done['config']['before']
        after['config_sha256'] = done['config']['after']
    if done['files'] or done['removed']:
        before['files'] = dict((f['member'], f['before']) for f in done['files'])
        after['files'] = dict((f['member'], f['after']) for f in done['files'])
        for member in done['removed']:
            before['files'][member] = 'present'
            after['files'][member] = None
    if done['tables']:
        before['tables'] = dict((t, v['before']) for t, v in done['tables'].items())
        after['tables'] = dict((t, v['after']) for t, v in done['tables'].items())
    if done['ipfs']:
        before['ipfs_not_pinned'] = list(done['ipfs'])
        after['ipfs_not_pinned'] = []
    backup_id = done['backup']['id']
    restored = {
        'parts': done['parts'],
        'config': bool(done['config']),
        'files': [f['member'] for f in done['files']],
        'removed': done['removed'],
        'tables': dict((t, {'rows_before': v['before']['rows'], 'rows_after': v['after']['rows']}) for t, v in done['tables'].items()),
    }
    if p['ipfs_api_url']:
        restored['ipfs'] = done['ipfs']
    result.update(
        changed=done['changed'],
        backup_id=backup_id,
        safety_backup_id=done['safety_backup_id'],
        restored=restored,
        diff={'before': before, 'after': after},
    )
    what = []
    if done['config']:
        what.append('config')
    if done['files'] or done['removed']:
        what.append('%d data file(s) replaced, %d removed' % (len(done['files']), len(done['removed'])))
    if done['tables']:
        what.append('table(s) %s' % ', '.join(sorted(done['tables'])))
    if done['ipfs']:
        what.append('%d IPFS DAG(s) re-imported' % len(done['ipfs']))
    if not done['changed']:
        result['msg'] = 'node already matches backup %s for %s; nothing restored' % (backup_id, ', '.join(done['parts']))
    elif module.check_mode:
        result['msg'] = 'would restore from backup %s: %s (after a safety backup)' % (backup_id, '; '.join(what))
    else:
        result['msg'] = 'restored from backup %s: %s; safety backup %s' % (backup_id, '; '.join(what), done['safety_backup_id'])
        if done.get('damaged_copy'):
            result['damaged_copy'] = done['damaged_copy']
            result['msg'] = ('restored from backup %s: %s; the replaced state was damaged, so instead of a safety backup its '
                             'files were kept as they were in %s' % (backup_id, '; '.join(what), done['damaged_copy']))
            module.warn('no safety backup: the current state could not be backed up (%s); kept as is in %s'
                        % (done['safety_error'], done['damaged_copy']))
    module.exit_json(**result)


def _test_restored(module, p, node_id, result):
    target = None if module.check_mode else p['restore_target']
    try:
        done = engine.run_test_restore(p['backup_dir'], p['backup_id'], target, node_id=node_id,
                                       data_dir=p['data_dir'], config_path=p['config_path'])
    except engine.BackupError as exc:
        module.fail_json(msg=str(exc), **result)
    comparison = done['comparison']
    result.update(backup_id=done['backup']['id'], comparison=comparison, restore_target=done['target'])
    if comparison['errors']:
        module.fail_json(msg='test restore of backup %s failed: %s' % (done['backup']['id'], '; '.join(comparison['errors'][:5])), **result)
    result['msg'] = 'test restore of backup %s: %d table(s) with matching row counts, every file checksum matches' % (
        done['backup']['id'], len(comparison['tables']))
    module.exit_json(**result)


def _pruned(module, p, node_id, result):
    for name in ('keep_daily', 'keep_weekly'):
        if p[name] is not None and p[name] < 0:
            module.fail_json(msg='%s must be 0 or more, got %d' % (name, p[name]), **result)
    try:
        before = [b['id'] for b in engine.list_backups(p['backup_dir'])['backups']
                  if b.get('node_id') == node_id and b.get('status') == 'completed']
        done = engine.prune_backups(p['backup_dir'], node_id, p['keep_daily'], p['keep_weekly'], check_mode=module.check_mode)
    except (engine.BackupError, OSError) as exc:
        module.fail_json(msg=str(exc), **result)
    ids = [d['id'] for d in done['delete']]
    result.update(changed=done['changed'], kept=done['kept'],
                  diff={'before': {'backups': before}, 'after': {'backups': [i for i in before if i not in ids]}})
    if module.check_mode:
        result['would_delete'] = ids
        verb = 'would delete'
    else:
        result['deleted'] = ids
        verb = 'deleted'
    result['msg'] = '%s %d backup(s) of %s, kept %d' % (verb, len(ids), node_id, len(done['kept']))
    module.exit_json(**result)


def _ipfs_client(p):
    """The node's IPFS RPC API when ipfs_api_url (QFLOW_IPFS_API_URL) is set, else None (IPFS not backed up)."""
    return IpfsClient(p, url_option='ipfs_api_url') if p['ipfs_api_url'] else None


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


if __name__ == '__main__':
    main()
