# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the qflow.ops roles use to validate their variables and gather per-node check items."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import difflib

from ansible.errors import AnsibleFilterError
from ansible_collections.qflow.ops.plugins.module_utils._time import parse_duration


def unknown_vars(names, known):
    """Return one readable line per name that is not in known, with a suggestion when one is close."""
    if not isinstance(known, (list, tuple)):
        raise AnsibleFilterError('unknown_vars: known must be a list of variable names')
    known = list(known)
    lines = []
    for name in sorted(set(names or [])):
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        lines.append('%s (did you mean %s?)' % (name, close[0]) if close else name)
    return lines


def collect_checks(hostvars, hosts, fact='qflow_checks'):
    """Flatten the per-host check items; a host that produced none is reported as one failed item."""
    result = []
    for host in hosts or []:
        try:
            items = hostvars[host].get(fact)
        except KeyError:
            items = None
        if not items:
            result.append({
                'node': host, 'item': 'reachable', 'title': 'Node answered the checks', 'ok': False,
                'value': 'no result', 'threshold': 'checked',
                'detail': 'the node produced no check results: it was unreachable or its tasks failed before the checks (see the play output)',
            })
            continue
        result.extend(items)
    return result


def step_item(result, node, item, title, summary='', check_mode=False, expect_change=False):
    """One check item for a maintenance step from the result it registered.

    ok is False only when the step failed (or, with expect_change, when it should have changed and did not run).
    value says what happened: failed, would change, changed, no change, skipped or not run.
    """
    result = result if isinstance(result, dict) else {}
    if not result:
        value, ok, detail = 'not run', not expect_change, 'the step did not run (tags, or an earlier failure)'
    elif result.get('failed') or result.get('unreachable'):
        value, ok = 'failed', False
        detail = result.get('msg') or 'the step failed without a message (see the play output)'
    elif result.get('skipped'):
        value, ok = 'skipped', True
        detail = result.get('skip_reason') or result.get('false_condition') or summary
        if isinstance(detail, str) and detail.startswith('Conditional result was False'):
            detail = summary
    elif result.get('changed'):
        value, ok, detail = ('would change' if check_mode else 'changed'), True, summary
    else:
        value, ok, detail = 'no change', True, summary
    return {'node': node, 'item': item, 'title': title, 'ok': ok, 'value': value, 'threshold': 'done',
            'detail': detail or ''}


def seconds(value):
    """Duration such as '24h' or '15m' to seconds (float)."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):

    def filters(self):
        return {'unknown_vars': unknown_vars, 'collect_checks': collect_checks, 'seconds': seconds,
                'step_item': step_item}
