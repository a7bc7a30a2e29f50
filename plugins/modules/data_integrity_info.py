#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: data_integrity_info
short_description: Verify the integrity of a Qflow node's data (state.db, flows in IPFS, IPFS repo)
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - The runbook's C(qflow data verify --comprehensive), C(ipfs repo verify), C(qflow flows list --status corrupted) and
    C(qflow data verify --post-restore), on the node's own files and IPFS daemon (node contract, data dir).
  - V(state_db) runs a full C(PRAGMA integrity_check) on C(<data_dir>/state.db) and counts the rows of the tables
    C(flows) and C(executions). A file that is not a database, or that SQLite cannot read, is a finding with the SQLite
    error, not a failure.
  - V(flows_ipfs) reads (C(cat)) the IPFS content of every C(flows) row that has an C(ipfs_cid) and compares it with the
    canonical JSON of the stored definition (sorted keys, no spaces, UTF-8, as the node adds it). Flows whose content is
    missing or different are listed in RV(corrupted_flows). Rows without a CID yet are counted, not flagged.
  - V(ipfs_repo) verifies the IPFS repo like M(qflow.ops.ipfs_repo) with V(verify) (C(repo/verify), or every pinned
    block re-hashed on js-ipfs).
  - Corrupt data is a finding (RV(ok) false, RV(problems)), never a failure. The module fails only for bad options or a
    data dir it cannot read.
  - Never writes anything. The database is opened with a read-only SQLite URI that creates no file - C(mode=ro) while
    the node's C(-wal) and C(-shm) exist (a running node; like any reader, SQLite updates its shared-memory index C(-shm)),
    otherwise C(mode=ro&immutable=1) (a stopped node; no C(-wal) or C(-shm) is created).
extends_documentation_fragment:
  - qflow.ops._api.HTTP
  - qflow.ops._attributes
  - qflow.ops._attributes.INFO_MODULE
options:
  data_dir:
    description:
      - The node's data directory (inventory variable C(qflow_data_dir)). It must exist and be readable.
    type: path
    default: /var/lib/qflow
  ipfs_api_url:
    description:
      - Root URL of the node's IPFS RPC API (inventory variable C(qflow_ipfs_api_url)), needed by V(flows_ipfs) and
        V(ipfs_repo).
      - If not set, the value of the E(QFLOW_IPFS_API_URL) environment variable is used.
    type: str
  checks:
    description:
      - The checks to run. Default - V(state_db), plus V(flows_ipfs) and V(ipfs_repo) when O(ipfs_api_url) is set.
      - V(flows_ipfs) and V(ipfs_repo) need O(ipfs_api_url).
    type: list
    elements: str
    choices: [state_db, flows_ipfs, ipfs_repo]
notes:
  - Run with C(become=true) when the data directory belongs to the qflow user.
  - O(timeout) also bounds what the IPFS daemon may spend on one flow or block (a missing block makes it search).
seealso:
  - module: qflow.ops.state_db
  - module: qflow.ops.ipfs_repo
  - module: qflow.ops.backup
'''

EXAMPLES = r'''
- name: Comprehensive data verification
  qflow.ops.data_integrity_info:
    data_dir: "{{ qflow_data_dir }}"
    ipfs_api_url: "{{ qflow_ipfs_api_url }}"
  register: qflow_integrity

- name: Stop here when the data is damaged (restore from the last verified backup)
  ansible.builtin.assert:
    that: qflow_integrity.ok
    fail_msg: "{{ qflow_integrity.problems }}"

- name: Post-restore check of the database only
  qflow.ops.data_integrity_info:
    data_dir: "{{ qflow_data_dir }}"
    checks: [state_db]
'''

RETURN = r'''
ok:
  description: True when every check that ran passed.
  returned: success
  type: bool
  sample: false
checks:
  description:
    - One entry per check that ran, each with C(ok) and C(detail) (one line).
    - C(state_db) also has C(path), C(integrity) (the first lines of C(PRAGMA integrity_check), V([ok]) when sound),
      C(error), C(opened_as), C(size_bytes), C(wal_bytes), C(page_size), C(pages), C(free_pages), C(journal_mode),
      C(tables) (rows of C(flows) and C(executions)).
    - C(flows_ipfs) also has C(checked), C(matched), C(without_cid), C(corrupted) (counts).
    - C(ipfs_repo) also has C(method), C(checked) and C(problems).
  returned: success
  type: dict
  sample: {"state_db": {"ok": true, "detail": "PRAGMA integrity_check ok; flows 4 rows, executions 4980 rows",
                        "integrity": ["ok"], "tables": {"flows": 4, "executions": 4980}},
           "flows_ipfs": {"ok": false, "detail": "3 of 4 flows with a CID match their IPFS content", "checked": 4,
                          "matched": 3, "without_cid": 0, "corrupted": 1},
           "ipfs_repo": {"ok": true, "detail": "5 blocks checked with pins, 0 problems", "method": "pins",
                         "checked": 5, "problems": []}}
counts:
  description: Rows of C(flows) and C(executions) (V(null) when the table could not be read).
  returned: success
  type: dict
  sample: {"flows": 4, "executions": 4980}
corrupted_flows:
  description: The flows whose IPFS content is missing or differs from the stored definition.
  returned: success
  type: list
  elements: dict
  sample: [{"id": "order-sync", "ipfs_cid": "bafkreifiimsdkhjcchmhfoyqrjfu24hoxbemmkimy26dkesvlwnuoponku",
            "problem": "missing or unreadable in IPFS: IPFS RPC API cat answered HTTP 500: not found"}]
problems:
  description: Every finding as one line (empty when RV(ok)).
  returned: success
  type: list
  elements: str
  sample: ["state.db (/var/lib/qflow/state.db): PRAGMA integrity_check: *** in database main *** Page 7: btreeInitPage() returns error code 11"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils import _integrity as engine
from ansible_collections.qflow.ops.plugins.module_utils._ipfs import IpfsClient, ipfs_argument_spec


def main():
    argument_spec = ipfs_argument_spec('ipfs_api_url')
    argument_spec.update(
        data_dir=dict(type='path', default='/var/lib/qflow'),
        checks=dict(type='list', elements='str', choices=list(engine.CHECKS)),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    if p['timeout'] is not None and p['timeout'] < 1:
        module.fail_json(msg='timeout must be at least 1 second, got %d' % p['timeout'])
    if p['checks'] is None:
        checks = ['state_db'] + (['flows_ipfs', 'ipfs_repo'] if p['ipfs_api_url'] else [])
    else:
        checks = [c for c in engine.CHECKS if c in p['checks']]
        if not checks:
            module.fail_json(msg='checks is empty: name at least one of %s' % ', '.join(engine.CHECKS))
    needs_ipfs = [c for c in checks if c != 'state_db']
    if needs_ipfs and not p['ipfs_api_url']:
        module.fail_json(msg='checks %s need ipfs_api_url (inventory variable qflow_ipfs_api_url, or QFLOW_IPFS_API_URL); '
                             'set it or run only state_db' % ', '.join(needs_ipfs))
    client = IpfsClient(module, url_option='ipfs_api_url') if needs_ipfs else None
    try:
        result = engine.run(p['data_dir'], checks, ipfs_client=client, timeout=p['timeout'] or 10)
    except engine.IntegrityError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
