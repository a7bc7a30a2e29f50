#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: cache
short_description: Clear, invalidate or clean the storage cache of a Qflow node
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Manages the storage cache of one Qflow node through its REST API. Every run first reads
    C(GET /api/v1/cache/stats) and C(GET /api/v1/cache/patterns) (one entry per cached key with its C(lastAccess)),
    decides what would change, and only then calls a mutating route.
  - O(state=cleared) empties the cache with C(DELETE /api/v1/cache/clear). Nothing is sent (not changed) when the
    node reports C(totalEntries=0). Clearing also resets the node's hit and miss counters.
  - O(state=invalidated) removes the entries named by O(keys) and/or tagged with one of O(tags) with
    C(POST /api/v1/cache/invalidate). Nothing is sent when none of the keys is cached. The result of a real run is the
    node's C(invalidatedCount) (changed when it is above 0).
  - O(state=cleaned) removes the entries whose C(lastAccess) is older than O(older_than) with
    C(POST /api/v1/cache/invalidate) on exactly those keys. Nothing is sent when no entry is that old.
  - Options are checked before any request, so a bad O(older_than) or a missing O(keys)/O(tags) fails without
    touching the node.
  - API errors (for example HTTP 401 C(INVALID_TOKEN) or 403 C(INSUFFICIENT_PERMISSIONS); the cache routes need a
    token) make the module fail with the Qflow error code and what to check.
extends_documentation_fragment:
  - qflow.ops._api
  - qflow.ops._api.HTTP
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Only the read routes are called. The prediction comes from the stats and the patterns listing.
      - Tags cannot always be predicted. Neither the real Qflow API nor the reference node lists the tags of an
        entry. In that case, when the cache is not empty, check mode reports changed with a warning, and a real run
        tells from C(invalidatedCount).
  diff_mode:
    support: full
    details:
      - Shows the number of cache entries before and after (predicted in check mode).
options:
  state:
    description:
      - V(cleared) removes every entry.
      - V(invalidated) removes the entries named by O(keys) or tagged with one of O(tags).
      - V(cleaned) removes the entries not accessed for O(older_than).
    type: str
    choices: [cleared, invalidated, cleaned]
    required: true
  keys:
    description:
      - Cache keys to remove, for example V(flow:flow-1) or V(ipfs:QmAbc01). Only with O(state=invalidated).
    type: list
    elements: str
  tags:
    description:
      - Remove every entry that carries one of these tags. The reference node tags an entry with the flow id and the
        key prefix (V(flow), V(context), V(subnet), V(ipfs)). Only with O(state=invalidated).
    type: list
    elements: str
  older_than:
    description:
      - Required with O(state=cleaned), refused with the other states. Entries whose C(lastAccess) is older than
        this are removed.
      - A number with an optional unit V(s), V(m), V(h), V(d) or V(w), for example V(7d).
      - The age is measured against the clock of the host that runs the module. Keep the clocks in sync.
    type: str
notes:
  - The node keeps serving while the module runs. An entry that is read again between the listing and the
    invalidation is still removed with O(state=cleaned). An entry that is created in that window survives
    O(state=cleared) only if it is created after the clear.
  - With O(state=invalidated), a key missing from the patterns listing counts as absent only when the listing holds
    as many entries as C(totalEntries). Otherwise the outcome is treated as unknown, as for tags.
seealso:
  - module: qflow.ops.metrics_info
  - module: qflow.ops.health_info
'''

EXAMPLES = r'''
- name: Clear the whole cache
  qflow.ops.cache:
    api_url: "{{ qflow_api_url }}"
    state: cleared

- name: Drop the cached entries of one flow
  qflow.ops.cache:
    api_url: "{{ qflow_api_url }}"
    state: invalidated
    keys:
      - flow:flow-1
      - context:flow-1

- name: Drop every IPFS entry (by tag)
  qflow.ops.cache:
    api_url: "{{ qflow_api_url }}"
    state: invalidated
    tags: [ipfs]

- name: Remove entries not accessed for a week
  qflow.ops.cache:
    api_url: "{{ qflow_api_url }}"
    state: cleaned
    older_than: 7d
  register: qflow_cache

- name: Show what went
  ansible.builtin.debug:
    msg: "{{ qflow_cache.invalidated_count }} entries removed: {{ qflow_cache['keys'] | join(', ') }}"
'''

RETURN = r'''
state:
  description: The requested O(state).
  returned: success
  type: str
  sample: cleaned
stats_before:
  description: C(GET /api/v1/cache/stats) before any change.
  returned: success
  type: dict
  sample: {"totalEntries": 42, "totalSize": 180224, "hitRate": 0.91, "missRate": 0.09, "evictionCount": 0,
           "memoryUsage": 180224}
stats_after:
  description:
    - C(GET /api/v1/cache/stats) read again after the change. Equal to RV(stats_before) when nothing was sent.
  returned: success and not check mode
  type: dict
  sample: {"totalEntries": 39, "totalSize": 171008, "hitRate": 0.91, "missRate": 0.09, "evictionCount": 0,
           "memoryUsage": 171008}
invalidated_count:
  description:
    - Entries removed. For a real O(state=invalidated) or O(state=cleaned) run, the node's C(invalidatedCount). For
      O(state=cleared), the C(totalEntries) before the clear. In check mode, the number of entries that would be
      removed, as far as it can be predicted.
  returned: success
  type: int
  sample: 3
keys:
  description:
    - Keys removed (or that would be removed in check mode), sorted.
    - When tags could not be predicted, a real run lists the keys that were in the listing before and are gone
      after. Check mode then lists only the keys known in advance.
    - In Jinja, write C(result['keys']); C(result.keys) is the dictionary method.
  returned: success
  type: list
  elements: str
  sample: ["ipfs:Qmab12cd05", "ipfs:Qmab12cd07", "flow:flow-3"]
predictable:
  description: Whether the outcome could be predicted from the listing (false for tags the node does not expose).
  returned: success
  type: bool
  sample: true
cutoff:
  description: With O(state=cleaned), entries last accessed before this time (ISO 8601 UTC) are removed.
  returned: when O(state=cleaned)
  type: str
  sample: '2026-11-20T04:30:00.000Z'
diff:
  description: Number of cache entries before and after (predicted in check mode).
  returned: success
  type: dict
  contains:
    before:
      description: Entries before the task.
      type: dict
      sample: {entries: 42}
    after:
      description: Entries after the task (predicted in check mode).
      type: dict
      sample: {entries: 39}
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: invalidated 3 cache entries last accessed before 2026-11-20T04:30:00.000Z
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils import _cache as cache
from ansible_collections.qflow.ops.plugins.module_utils._api import QflowClient, QflowError, api_argument_spec
from ansible_collections.qflow.ops.plugins.module_utils._time import iso, parse_duration, utcnow


def _check_options(p):
    """Refuse inconsistent options before any request. Return older_than in seconds (or None)."""
    state = p['state']
    if state != 'invalidated' and (p['keys'] or p['tags']):
        raise ValueError('keys and tags are used only with state=invalidated (state=%s); nothing was sent to the node' % state)
    if state != 'cleaned' and p['older_than'] is not None:
        raise ValueError('older_than is used only with state=cleaned (state=%s); nothing was sent to the node' % state)
    if state == 'invalidated' and not (p['keys'] or p['tags']):
        raise ValueError('state=invalidated needs keys or tags (use state=cleared to remove everything); '
                         'nothing was sent to the node')
    if state == 'cleaned':
        if p['older_than'] is None:
            raise ValueError("state=cleaned needs older_than, for example '7d'; nothing was sent to the node")
        try:
            return parse_duration(p['older_than'])
        except ValueError as exc:
            raise ValueError('older_than: %s; nothing was sent to the node' % exc)
    return None


def run(module, client, older_than_seconds):
    p = module.params
    state = p['state']
    check = module.check_mode
    stats_before = cache.read_stats(client)
    patterns = cache.read_patterns(client)
    before = cache.entry_count(stats_before, patterns)
    result = dict(changed=False, state=state, stats_before=stats_before, invalidated_count=0, keys=[], predictable=True)
    after = before
    sent = False

    if state == 'cleared':
        targets = sorted(set(str(e['key']) for e in patterns))
        if before == 0:
            result['msg'] = 'the cache is already empty'
        else:
            result.update(changed=True, invalidated_count=before, keys=targets)
            after = 0
            if check:
                result['msg'] = 'would clear %d cache entries' % before
            else:
                cache.clear(client)
                sent = True
                result['msg'] = 'cleared %d cache entries' % before
    else:
        if state == 'cleaned':
            plan = cache.plan_clean(patterns, older_than_seconds, utcnow())
            plan['known'] = True
            result['cutoff'] = iso(plan['cutoff'])
            if plan['unknown_age']:
                module.warn('%d cache entries have no readable lastAccess and were left alone: %s'
                            % (len(plan['unknown_age']), ', '.join(plan['unknown_age'][:10])))
            what = 'last accessed before %s' % result['cutoff']
        else:
            plan = cache.plan_invalidate(stats_before, patterns, p['keys'], p['tags'])
            parts = []
            if p['keys']:
                parts.append('keys %s' % ', '.join(p['keys']))
            if p['tags']:
                parts.append('tags %s' % ', '.join(p['tags']))
            what = 'matching %s' % ' or '.join(parts)
        targets = plan['targets']
        result['predictable'] = plan['known']
        if plan['known'] and not targets:
            result['msg'] = 'no cache entry %s' % what
        elif check:
            result.update(changed=True, invalidated_count=len(targets), keys=targets)
            after = before - len(targets)
            if plan['known']:
                result['msg'] = 'would invalidate %d cache entries %s' % (len(targets), what)
            else:
                module.warn('The node does not say which cache entries carry these tags (or lists fewer entries than '
                            'totalEntries), so check mode cannot predict the outcome: reported as changed. A real run '
                            'uses the invalidatedCount the node returns.')
                result['msg'] = 'would invalidate the cache entries %s (%d known in advance)' % (what, len(targets))
        else:
            if state == 'cleaned':
                count = cache.invalidate(client, keys=targets)
            else:
                count = cache.invalidate(client, keys=p['keys'], tags=p['tags'])
            sent = True
            keys = targets
            if not plan['known']:
                gone = set(str(e['key']) for e in patterns) - set(str(e['key']) for e in cache.read_patterns(client))
                keys = sorted(gone | set(targets)) if count else []
            result.update(changed=count > 0, invalidated_count=count, keys=keys)
            result['msg'] = 'invalidated %d cache entries %s' % (count, what)

    if not check:
        stats_after = cache.read_stats(client) if sent else stats_before
        result['stats_after'] = stats_after
        after = cache.entry_count(stats_after)
    result['diff'] = dict(before=dict(entries=before), after=dict(entries=after))
    return result


def main():
    spec = api_argument_spec()
    spec.update(
        state=dict(type='str', required=True, choices=['cleared', 'invalidated', 'cleaned']),
        keys=dict(type='list', elements='str', no_log=False),
        tags=dict(type='list', elements='str'),
        older_than=dict(type='str'),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    try:
        older_than_seconds = _check_options(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc), changed=False)
    client = QflowClient(module)
    try:
        result = run(module, client, older_than_seconds)
    except QflowError as exc:
        module.fail_json(msg=str(exc), changed=False, **(exc.to_result() if hasattr(exc, 'to_result') else {}))
    except cache.CacheError as exc:
        module.fail_json(msg=str(exc), changed=False)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
