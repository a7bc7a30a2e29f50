#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: diagnostics
short_description: Collect a Qflow node's logs, redacted config, metrics and state into one incident archive
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - The runbook's C(qflow debug collect-all), C(qflow debug dump-state), C(qflow audit recent-changes) and, with
    O(mode=forensics), C(qflow security forensics collect --preserve-evidence), run on the node (node contract - its
    files, REST API, metrics endpoint and IPFS API).
  - Writes C(<dest>/<name>.tar.gz) (mode C(0600); O(dest) is created with mode C(0700) when missing) with one top
    directory C(<name>/) holding C(manifest.json) (created_at, node_id, mode, since, collector version, every member
    with its size and sha256, and what could not be collected with the reason), C(logs/) (C(qflow.log) and the rotated
    files changed within O(since)), C(config/qflow-config.yaml) (secret-looking values redacted),
    C(config/qflow.env.redacted) (C(KEY=value), secrets as C(<redacted sha256:...>)), C(metrics.txt),
    C(state/health.json), C(state/ready.json), C(state/system-info.json), C(state/modes.json),
    C(state/executions-active.json) (running, paused and pending executions), C(state/db.json) (size, pages,
    C(PRAGMA quick_check), row counts), C(state/ipfs.json) (with O(ipfs_api_url)) and C(changes/recent.json) (config
    backups, secret rotations, env file backups, node backups, release history and files of the etc and data dirs
    changed within O(since)).
  - B(No secret value) of the env file (and its C(.bak) copies), of the config file or O(api_token) appears anywhere in
    the archive, in either mode. Secret values are replaced by C(<redacted sha256:...>) (the first 12 hex digits of
    their SHA-256) wherever they occur.
  - An unreachable API, metrics endpoint or IPFS daemon does not fail the module - diagnostics run during outages. What
    could not be collected is listed in the manifest's C(missing) with the reason. After the API fails to connect, the
    other API requests are skipped.
  - O(mode=forensics) also writes C(forensics/stat.json) (type, mode, uid, gid, size, inode, mtime, ctime, atime of
    every entry of the node's etc, data, log, backup and release dirs, taken before this run reads any file) and
    C(forensics/hashes.sha256) (C(sha256sum -c) format, absolute paths) of every regular file there. It never modifies
    the node - files are opened with C(O_RDONLY) (and C(O_NOATIME) when allowed, so access times stay as they were
    where this user owns the files or is root), the API only gets C(GET) requests, the log files are copied whole, and
    C(state.db) is never opened by SQLite in place - its bytes and C(-wal) are copied into a private work dir under
    O(dest) and the copy is inspected. O(dest) must be outside those dirs.
  - In O(mode=standard), C(state.db) is opened with a read-only SQLite URI that creates no file (C(mode=ro) while the
    node's C(-wal) and C(-shm) exist - like any reader, SQLite updates its shared-memory index C(-shm) -, otherwise
    C(mode=ro&immutable=1)).
extends_documentation_fragment:
  - qflow.ops._api
  - qflow.ops._api.HTTP
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Lists what would be collected (with the size of the files that are copied whole) and writes nothing, not even
        O(dest).
  diff_mode:
    support: full
    details:
      - The archive before (absent, or the existing one) and after, with its member count.
  idempotent:
    description: When run twice with the same arguments, the second run changes nothing.
    support: full
    details:
      - An existing C(<dest>/<name>.tar.gz) is kept and its manifest returned, unless O(force=true).
options:
  dest:
    description:
      - Directory on the node where the archive is written. Created with mode C(0700) when missing.
      - With O(mode=forensics) it must not be inside the node's config, data, log, backup or release directories.
    type: path
    required: true
  name:
    description:
      - Base name of the archive and of its top directory, for example the incident id.
      - Letters, digits, V(.), V(_) and V(-), starting with a letter or digit, at most 128 characters.
    type: str
    required: true
  mode:
    description:
      - V(standard) collects for troubleshooting; V(forensics) also hashes and stats every file and guarantees that
        nothing of the node changes (see above).
    type: str
    choices: [standard, forensics]
    default: standard
  force:
    description:
      - Collect again and replace an existing C(<dest>/<name>.tar.gz).
    type: bool
    default: false
  since:
    description:
      - How far back "recent" goes, for example V(2h), V(30m), V(1d) (units C(s), C(m), C(h), C(d), C(w)) - rotated log
        files, backups, config backups, secret rotations, releases and changed files newer than this are collected.
    type: str
    default: 2h
  log_lines:
    description:
      - In O(mode=standard), keep only the last O(log_lines) lines of each uncompressed log file. V(0) copies whole files.
      - In O(mode=forensics) log files are always copied whole.
    type: int
    default: 10000
  config_path:
    description:
      - The node's config file (inventory variable C(qflow_config_path)). Its directory must exist; a missing or
        unparsable file is recorded in the manifest (an unparsable one is redacted line by line).
    type: path
    default: /etc/qflow/qflow-config.yaml
  env_path:
    description:
      - The node's env file (inventory variable C(qflow_env_path)).
    type: path
    default: /etc/qflow/qflow.env
  data_dir:
    description:
      - The node's data directory (inventory variable C(qflow_data_dir)). It must exist.
    type: path
    default: /var/lib/qflow
  log_dir:
    description:
      - The node's log directory (inventory variable C(qflow_log_dir)). It must exist.
    type: path
    default: /var/log/qflow
  backup_dir:
    description:
      - The node's backup directory (inventory variable C(qflow_backup_dir)) - its catalog gives the recent backups.
        A missing one is noted, not an error.
    type: path
    default: /var/backups/qflow
  config_backup_dir:
    description:
      - Where M(qflow.ops.config) keeps the config backups. Default - C(config-backups) beside O(config_path), as that
        module does.
    type: path
  release_dir:
    description:
      - The node's release directory (inventory variable C(qflow_release_dir)). When set, its C(history.jsonl) entries
        within O(since) are collected and, in O(mode=forensics), its files are hashed.
    type: path
  metrics_url:
    description:
      - URL of the node's Prometheus metrics endpoint (inventory variable C(qflow_metrics_url)), scraped once.
      - If not set, the value of the E(QFLOW_METRICS_URL) environment variable is used, then the default.
    type: str
    default: http://localhost:9090/metrics
  ipfs_api_url:
    description:
      - Root URL of the node's IPFS RPC API (inventory variable C(qflow_ipfs_api_url)). When set, the repo summary
        (size, objects, version, pins) is collected as C(state/ipfs.json) with read-only commands.
      - If not set, the value of the E(QFLOW_IPFS_API_URL) environment variable is used.
    type: str
notes:
  - Run with C(become=true) so that the env file, the data dir and the logs can be read.
  - The archive holds operational data (log messages, flow and execution ids); store it like the logs.
seealso:
  - module: qflow.ops.data_integrity_info
  - module: qflow.ops.logs_info
  - module: qflow.ops.health_info
'''

EXAMPLES = r'''
- name: Collect everything for the incident (qflow debug collect-all)
  qflow.ops.diagnostics:
    dest: /var/tmp/qflow-incidents
    name: "INC-{{ incident_id }}"
    config_path: "{{ qflow_config_path }}"
    env_path: "{{ qflow_env_path }}"
    data_dir: "{{ qflow_data_dir }}"
    log_dir: "{{ qflow_log_dir }}"
    backup_dir: "{{ qflow_backup_dir }}"
    api_url: "{{ qflow_api_url }}"
    api_token: "{{ qflow_api_token }}"
    metrics_url: "{{ qflow_metrics_url }}"
    since: 2h
  become: true
  register: qflow_diag

- name: Bring the archive to the controller
  ansible.builtin.fetch:
    src: "{{ qflow_diag.path }}"
    dest: "incidents/{{ inventory_hostname }}/"
    flat: true
  become: true

- name: Preserve evidence after a security breach (never modifies the node)
  qflow.ops.diagnostics:
    dest: /var/tmp/qflow-forensics
    name: "SEC-{{ incident_id }}"
    mode: forensics
    since: 1d
    config_path: "{{ qflow_config_path }}"
    env_path: "{{ qflow_env_path }}"
    data_dir: "{{ qflow_data_dir }}"
    log_dir: "{{ qflow_log_dir }}"
    backup_dir: "{{ qflow_backup_dir }}"
    release_dir: "{{ qflow_release_dir | default(omit) }}"
    api_url: "{{ qflow_api_url }}"
    api_token: "{{ qflow_api_token }}"
  become: true
'''

RETURN = r'''
path:
  description: The archive.
  returned: always
  type: str
  sample: /var/tmp/qflow-incidents/INC-42.tar.gz
sha256:
  description: SHA-256 of the archive (V(null) in check mode when it does not exist yet).
  returned: success
  type: str
  sample: 4f1c0e3b9a7d2c61e0f5b8a9d3c2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4
manifest:
  description: Summary of the archive's manifest (predicted in check mode).
  returned: success
  type: dict
  contains:
    name:
      description: O(name).
      type: str
      sample: INC-42
    created_at:
      description: When the collection started (UTC).
      type: str
      sample: "2026-11-27T03:12:45.123Z"
    node_id:
      description: C(NODE_ID) of the env file, else the C(nodeId) of C(/health), else the short host name.
      type: str
      sample: qflow-node-7
    mode:
      description: O(mode).
      type: str
      sample: standard
    since:
      description: O(since).
      type: str
      sample: 2h
    collector_version:
      description: Version of the collector (format of the archive).
      type: str
      sample: "1.0"
    duration_seconds:
      description: Collection time.
      type: float
      sample: 1.42
    member_count:
      description: Files in the archive, C(manifest.json) included.
      type: int
      sample: 14
    bytes:
      description: Total size of the members listed in the manifest (uncompressed).
      type: int
      sample: 1843221
    missing:
      description: What could not be collected, each with C(item) and C(reason).
      type: list
      elements: dict
      sample: [{"item": "metrics.txt", "reason": "Cannot reach the metrics endpoint at http://127.0.1.7:9090/metrics: [Errno 111] Connection refused."}]
    state_db_access:
      description: How C(state.db) was opened.
      type: str
      sample: read-only URI mode=ro&immutable=1 (no -wal, nothing is created)
    forensics:
      description: With O(mode=forensics), C(files_hashed), C(bytes_hashed), C(entries), C(skipped), C(roots); else V(null).
      type: dict
      sample: {"files_hashed": 31, "bytes_hashed": 10485760, "entries": 38, "skipped": 0, "roots": ["/etc/qflow"]}
planned:
  description: In check mode, when the archive would be written, the members that would be collected with their source
    and size (V(null) when only known at run time).
  returned: check mode
  type: list
  elements: dict
  sample: [{"path": "logs/qflow.log", "size": 5242880, "source": "/var/log/qflow/qflow.log"}]
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: "collected 14 members (1843221 bytes, 1 missing) into /var/tmp/qflow-incidents/INC-42.tar.gz in 1.4 s"
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.parameters import env_fallback

from ansible_collections.qflow.ops.plugins.module_utils import _diagnostics as engine
from ansible_collections.qflow.ops.plugins.module_utils._api import api_argument_spec
from ansible_collections.qflow.ops.plugins.module_utils._backup import sha256_file
from ansible_collections.qflow.ops.plugins.module_utils._ipfs import ipfs_argument_spec
from ansible_collections.qflow.ops.plugins.module_utils._time import parse_duration, utcnow


def main():
    argument_spec = api_argument_spec()
    argument_spec.update(ipfs_argument_spec('ipfs_api_url'))
    argument_spec.update(
        dest=dict(type='path', required=True),
        name=dict(type='str', required=True),
        mode=dict(type='str', default='standard', choices=list(engine.MODES)),
        force=dict(type='bool', default=False),
        since=dict(type='str', default='2h'),
        log_lines=dict(type='int', default=10000),
        config_path=dict(type='path', default='/etc/qflow/qflow-config.yaml'),
        env_path=dict(type='path', default='/etc/qflow/qflow.env'),
        data_dir=dict(type='path', default='/var/lib/qflow'),
        log_dir=dict(type='path', default='/var/log/qflow'),
        backup_dir=dict(type='path', default='/var/backups/qflow'),
        config_backup_dir=dict(type='path'),
        release_dir=dict(type='path'),
        metrics_url=dict(type='str', default='http://localhost:9090/metrics', fallback=(env_fallback, ['QFLOW_METRICS_URL'])),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = dict(module.params)
    path = engine.archive_path(p['dest'], p['name'] or '')
    result = dict(changed=False, path=path)
    try:
        p['since_seconds'] = parse_duration(p['since'])
    except ValueError as exc:
        module.fail_json(msg='since: %s; nothing was written' % exc, **result)
    if p['timeout'] is not None and p['timeout'] < 1:
        module.fail_json(msg='timeout must be at least 1 second, got %d; nothing was written' % p['timeout'], **result)
    try:
        engine.validate(p)
    except engine.DiagnosticsError as exc:
        module.fail_json(msg=str(exc), **result)

    exists = os.path.isfile(path)
    before = '%s: absent\n' % path
    if exists:
        try:
            old = engine.summary(engine.read_manifest(path, p['name']))
        except engine.DiagnosticsError as exc:
            if not p['force']:
                module.fail_json(msg=str(exc), **result)
            old = None
        before = '%s: %s\n' % (path, '%d members' % old['member_count'] if old else 'unreadable archive')
        if not p['force']:
            result.update(sha256=sha256_file(path), manifest=old,
                          msg='%s exists (collected %s); not collected again (force: true to replace it)'
                          % (path, old['created_at']))
            module.exit_json(**result)

    if module.check_mode:
        planned, forensics = engine.plan(p)
        result.update(changed=True, sha256=sha256_file(path) if exists else None, planned=planned,
                      manifest={'name': p['name'], 'created_at': None, 'node_id': None, 'mode': p['mode'],
                                'since': p['since'], 'collector_version': engine.COLLECTOR_VERSION,
                                'duration_seconds': None, 'member_count': len(planned),
                                'bytes': sum(m['size'] or 0 for m in planned), 'missing': [], 'state_db_access': None,
                                'forensics': forensics},
                      msg='would collect %d members into %s' % (len(planned), path))
        if module._diff:
            result['diff'] = {'before': before, 'after': '%s: %d members (predicted)\n' % (path, len(planned))}
        module.exit_json(**result)

    try:
        path, digest, manifest = engine.collect(p, utcnow())
    except engine.DiagnosticsError as exc:
        module.fail_json(msg=str(exc), **result)
    except (IOError, OSError) as exc:
        module.fail_json(msg='cannot write the archive %s: %s; check that dest is writable and has free space (nothing '
                             'was kept)' % (path, exc), **result)
    summary = engine.summary(manifest)
    result.update(changed=True, path=path, sha256=digest, manifest=summary,
                  msg='collected %d members (%d bytes, %d missing) into %s in %s s' % (
                      summary['member_count'], summary['bytes'], len(summary['missing']), path, summary['duration_seconds']))
    if module._diff:
        result['diff'] = {'before': before, 'after': '%s: %d members\n' % (path, summary['member_count'])}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
