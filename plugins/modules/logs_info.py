#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: logs_info
short_description: Summarise the JSON-lines logs of a Qflow node
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Reads C(<log_dir>/qflow.log) and its rotations (C(qflow.log.1), C(qflow.log.2.gz), ...; C(.gz), C(.bz2) and
    C(.xz) are decompressed), one JSON object per line with C(time), C(level), C(component) and C(message).
  - Counts the entries per level over the O(since) window, returns the newest entries at or above O(level), and
    groups recurring messages into patterns. A pattern is the message with its variable parts (UUIDs, hex ids,
    ids such as C(step-2) or C(exec-7f3a), timestamps, durations, quoted strings, IP addresses, numbers) replaced
    by placeholders such as C(<uuid>), C(<id>), C(<duration>), C(<str>), C(<n>), counted per level and component.
  - Lines that are not JSON objects with a readable C(time) are counted in RV(unparsed_lines).
  - Rotated files last modified before the window are skipped without being read.
extends_documentation_fragment:
  - qflow.ops._attributes
  - qflow.ops._attributes.INFO_MODULE
options:
  log_dir:
    description:
      - Directory that holds C(qflow.log).
    type: path
    default: /var/log/qflow
  since:
    description:
      - Window to read, ending now, for example V(1h), V(24h), V(7d). V(0) reads everything.
    type: str
    default: 24h
  level:
    description:
      - Lowest level of the returned entries, patterns and RV(by_component). RV(counts) covers all levels.
    type: str
    choices: [debug, info, warn, error, fatal]
    default: warn
  component:
    description:
      - Only these components, for example V(execution-engine), V(storage). Applies to every result.
    type: list
    elements: str
  limit:
    description:
      - How many entries to return, newest first.
    type: int
    default: 50
  max_patterns:
    description:
      - How many patterns to return, the most frequent first.
    type: int
    default: 20
notes:
  - The log directory is usually readable by root and the qflow user only; use C(become) when needed.
seealso:
  - module: qflow.ops.health_info
'''

EXAMPLES = r'''
- name: Errors of the last hour
  qflow.ops.logs_info:
    log_dir: "{{ qflow_log_dir }}"
    since: 1h
    level: error
  become: true
  register: qflow_logs

- name: Show the recurring errors
  ansible.builtin.debug:
    msg: "{{ item.count }} x [{{ item.component }}] {{ item.pattern }}"
  loop: "{{ qflow_logs.patterns }}"

- name: Execution engine warnings of the last week
  qflow.ops.logs_info:
    since: 7d
    component: [execution-engine]
    limit: 10
  register: engine_logs
'''

RETURN = r'''
counts:
  description: Entries in the window per level, all levels (O(component) applies).
  returned: success
  type: dict
  sample: {"debug": 0, "info": 1200, "warn": 14, "error": 3, "fatal": 0}
by_component:
  description: Entries at or above O(level) in the window, per component.
  returned: success
  type: dict
  sample: {"execution-engine": 12, "storage": 5}
entries:
  description: The newest entries at or above O(level), at most O(limit).
  returned: success
  type: list
  elements: dict
  contains:
    time:
      description: Entry time, ISO 8601 UTC.
      type: str
      returned: always
    level:
      description: Level.
      type: str
      returned: always
    component:
      description: Component (V(unknown) when absent).
      type: str
      returned: always
    message:
      description: Message.
      type: str
      returned: always
    file:
      description: Name of the file the entry came from.
      type: str
      returned: always
    extra:
      description: The other keys of the entry, such as C(executionId) and C(flowId).
      type: dict
      returned: when the entry has other keys
matched:
  description: Number of entries at or above O(level) in the window (before O(limit)).
  returned: success
  type: int
patterns:
  description: Recurring messages at or above O(level), the most frequent first, at most O(max_patterns).
  returned: success
  type: list
  elements: dict
  contains:
    pattern:
      description: The normalised message.
      type: str
      returned: always
      sample: "Step step-<id> failed: upstream timeout after <duration>"
    count:
      description: Number of entries.
      type: int
      returned: always
    level:
      description: Level.
      type: str
      returned: always
    component:
      description: Component.
      type: str
      returned: always
    first_seen:
      description: Time of the oldest entry.
      type: str
      returned: always
    last_seen:
      description: Time of the newest entry.
      type: str
      returned: always
    example:
      description: The newest message of the pattern as written.
      type: str
      returned: always
      sample: "Step step-2 failed: upstream timeout after 3000 ms"
patterns_total:
  description: Number of distinct patterns before O(max_patterns).
  returned: success
  type: int
unparsed_lines:
  description: Lines that are not JSON objects with a readable time.
  returned: success
  type: int
files:
  description: The log files read, newest first.
  returned: success
  type: list
  elements: str
files_skipped:
  description: Rotated files not read because they were last written before the window.
  returned: success
  type: list
  elements: str
since:
  description: Start of the window (ISO 8601 UTC); null when O(since=0).
  returned: success
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils._logs import LEVELS, LogDirError, summarize
from ansible_collections.qflow.ops.plugins.module_utils._time import parse_duration


def main():
    module = AnsibleModule(
        argument_spec=dict(
            log_dir=dict(type='path', default='/var/log/qflow'),
            since=dict(type='str', default='24h'),
            level=dict(type='str', default='warn', choices=list(LEVELS)),
            component=dict(type='list', elements='str'),
            limit=dict(type='int', default=50),
            max_patterns=dict(type='int', default=20),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        since_seconds = parse_duration(params['since'])
    except ValueError as e:
        module.fail_json(msg='since: %s' % e)
    if params['limit'] < 0 or params['max_patterns'] < 0:
        module.fail_json(msg='limit and max_patterns must be 0 or more')
    try:
        result = summarize(params['log_dir'], since_seconds=since_seconds, min_level=params['level'],
                           components=params['component'], limit=params['limit'], max_patterns=params['max_patterns'])
    except LogDirError as e:
        module.fail_json(msg=str(e), log_dir=params['log_dir'])
    if not result['files'] and not result['files_skipped']:
        module.warn('No qflow.log* file in %s; the node writes none yet, or log_dir is wrong.' % params['log_dir'])
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
