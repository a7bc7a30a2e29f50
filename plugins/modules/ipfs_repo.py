#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: ipfs_repo
short_description: Stat, garbage-collect or verify the IPFS repo of a Qflow node
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Talks to the node's IPFS daemon through its RPC API (C(/api/v0), kubo or js-ipfs), always with C(POST).
  - V(stat) returns the repo size, object count, storage limit, daemon version and pin counts. It never changes
    anything.
  - V(gc) runs C(repo/gc) and returns the removed blocks. It reports changed only when something was removed.
  - V(verify) runs C(repo/verify) when the daemon has it (kubo). Otherwise (js-ipfs) it reads every pinned root and
    every block below a recursive pin with C(block/get), checks that the block is in the repo and that its bytes hash
    to its CID. The module fails and names the CIDs when a block is missing or corrupt.
  - CIDs are compared by multihash, so CIDv0, CIDv1 and every multibase spelling of a block are the same block.
extends_documentation_fragment:
  - qflow.ops._api.HTTP
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - V(stat) and V(verify) only read.
      - With V(gc), predicts the blocks gc would remove by comparing C(refs/local) with what gc keeps (pinned roots,
        the blocks below recursive pins, the MFS root and the blocks below it), and does not run gc.
  diff_mode:
    support: full
    details:
      - With V(gc), the number of objects in the repo before and after.
options:
  api_url:
    description:
      - Root URL of the IPFS RPC API (without C(/api/v0)), for example the inventory variable C(qflow_ipfs_api_url).
      - If not set, the value of the E(QFLOW_IPFS_API_URL) environment variable is used, then the default.
    type: str
    default: http://localhost:5001
  state:
    description:
      - V(stat) reports the repo, V(gc) removes the blocks no pin (and no MFS file) keeps, V(verify) checks the repo.
    type: str
    choices: [stat, gc, verify]
    default: stat
  block_timeout:
    description:
      - With V(verify) and the per-pin check, seconds the daemon may spend on one block. A missing block makes a
        daemon search the network, so this bounds that search; raise it for very large blocks on slow disks.
    type: int
    default: 5
seealso:
  - module: qflow.ops.backup
'''

EXAMPLES = r'''
- name: IPFS repo of this node
  qflow.ops.ipfs_repo:
    api_url: "{{ qflow_ipfs_api_url }}"
  register: qflow_ipfs

- name: Remove unpinned blocks
  qflow.ops.ipfs_repo:
    api_url: "{{ qflow_ipfs_api_url }}"
    state: gc

- name: Verify every pinned block (fails naming the CIDs that are missing or corrupt)
  qflow.ops.ipfs_repo:
    api_url: "{{ qflow_ipfs_api_url }}"
    state: verify
    timeout: 60
'''

RETURN = r'''
repo:
  description: The repo (state V(stat), and after V(gc)).
  returned: success
  type: dict
  contains:
    repo_size:
      description: Bytes used by the repo.
      type: int
      returned: always
      sample: 2074
    num_objects:
      description: Blocks in the repo.
      type: int
      returned: always
      sample: 3
    storage_max:
      description: Configured storage limit in bytes.
      type: int
      returned: always
    repo_path:
      description: Repo path on the daemon's host.
      type: str
      returned: always
    repo_version:
      description: Repo format version.
      type: str
      returned: always
      sample: "12"
    version:
      description: Daemon version.
      type: str
      returned: always
      sample: 0.18.1
    pins:
      description: Number of pins.
      type: int
      returned: always
      sample: 3
    pins_by_type:
      description: Pins per type (V(recursive), V(direct), V(indirect)).
      type: dict
      returned: always
      sample: {"recursive": 3}
removed:
  description: With V(gc), the removed blocks (in check mode, the blocks gc would remove).
  returned: state is gc
  type: list
  elements: str
  sample: ["bafkreifvvx45p6ccil53ytqx3ufgk54evpxdqm7najhfzusx55ipmfvj4q"]
removed_count:
  description: Number of entries in RV(removed).
  returned: state is gc
  type: int
  sample: 1
verify:
  description: With V(verify), how the repo was verified.
  returned: state is verify
  type: dict
  contains:
    method:
      description: V(repo/verify) (the daemon's own check) or V(pins) (every pinned block read and re-hashed).
      type: str
      returned: always
    checked:
      description: Blocks checked.
      type: int
      returned: always
    problems:
      description: One message per missing or corrupt block, naming its CID (empty on success).
      type: list
      elements: str
      returned: always
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils._api import QflowError
from ansible_collections.qflow.ops.plugins.module_utils._ipfs import (
    DEFAULT_IPFS_API_URL, IpfsClient, gc_candidates, ipfs_argument_spec, repo_summary, verify_repo)


def main():
    argument_spec = ipfs_argument_spec()
    argument_spec['api_url']['default'] = DEFAULT_IPFS_API_URL
    argument_spec.update(
        state=dict(type='str', default='stat', choices=['stat', 'gc', 'verify']),
        block_timeout=dict(type='int', default=5),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    for name in ('timeout', 'block_timeout'):
        if p[name] is not None and p[name] < 1:
            module.fail_json(msg='%s must be 1 or more, got %d' % (name, p[name]))
    client = IpfsClient(module)
    result = dict(changed=False, api_url=client.base_url)
    try:
        if p['state'] == 'stat':
            result['repo'] = repo_summary(client)
        elif p['state'] == 'gc':
            _gc(module, client, result)
        else:
            _verify(module, client, p['block_timeout'], result)
    except QflowError as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


def _gc(module, client, result):
    before = repo_summary(client)
    if module.check_mode:
        removed = gc_candidates(client)
        after = dict(before, num_objects=(before['num_objects'] or 0) - len(removed))
    else:
        removed, errors = client.gc()
        if errors:
            module.fail_json(msg='IPFS repo/gc at %s reported errors after removing %d block(s): %s. Look at the daemon log; '
                             'run gc again once the cause is fixed.' % (client.base_url, len(removed), '; '.join(errors[:5])),
                             removed=removed, removed_count=len(removed), changed=bool(removed), api_url=client.base_url)
        after = repo_summary(client)
    result.update(changed=bool(removed), removed=removed, removed_count=len(removed), repo=after,
                  diff={'before': {'num_objects': before['num_objects']}, 'after': {'num_objects': after['num_objects']}})


def _verify(module, client, block_timeout, result):
    done = verify_repo(client, block_timeout=block_timeout)
    result['verify'] = done
    if done['problems']:
        module.fail_json(msg='IPFS repo at %s failed verification (%s): %s. Re-import the affected DAGs from a backup '
                         '(qflow.ops.backup state=restored with ipfs_api_url) or re-add the content, then verify again.'
                         % (client.base_url, done['method'], '; '.join(done['problems'][:5])), **result)


if __name__ == '__main__':
    main()
