# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rotation plan of the Qflow secrets held in a Kubernetes Secret (the env file's are the qflow.ops.secret module's).

The decision (missing, too short, older than max_age, age unknown) is the module's own (module_utils/_secret.decide);
the record of the last rotation lives in the Secret's annotations instead of the env file's sidecar.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import binascii

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.qflow.ops.plugins.module_utils import _secret as engine
from ansible_collections.qflow.ops.plugins.module_utils._time import iso, parse_duration, parse_iso, utcnow

ANNOTATION_PREFIX = 'qflow.ops/'


def rotated_at_annotation(name):
    return '%s%s-rotated-at' % (ANNOTATION_PREFIX, name)


def fingerprint_annotation(name):
    return '%s%s-fingerprint' % (ANNOTATION_PREFIX, name)


def _b64(value):
    return base64.b64encode(value.encode('utf-8')).decode('ascii')


def _decode(secret_ref, key, raw):
    try:
        return base64.b64decode(raw, validate=True).decode('utf-8')
    except (binascii.Error, ValueError, TypeError):
        raise AnsibleFilterError('secret_plan: key %s of Secret %s is not base64-encoded UTF-8 text' % (key, secret_ref))


def secret_plan(resource, names=None, state='rotated', max_age=None, keep_previous=True, length=48, min_length=32,
                check_mode=False, now=None):
    """Plan the rotation of ``names`` in a Secret as returned by kubernetes.core.k8s_info.

    Returns ``result`` (no secret value: changed, rotated, reasons, fingerprints, restart_required, backup_file,
    secret, msg - shaped like qflow.ops.secret's return), ``patch`` (the merge patch that rotates: new values,
    ``<NAME>_PREVIOUS``, annotations; ``{}`` when nothing changes) and ``restore`` (the merge patch that puts back the
    values and annotations the patch replaces). ``patch`` and ``restore`` hold secret values: keep them in a no_log fact.
    """
    if not isinstance(resource, dict) or not isinstance(resource.get('metadata'), dict):
        raise AnsibleFilterError('secret_plan: the input must be a Secret resource (an item of k8s_info resources)')
    if resource.get('kind', 'Secret') != 'Secret':
        raise AnsibleFilterError('secret_plan: the input is a %s, not a Secret' % resource.get('kind'))
    names = list(dict.fromkeys(names or engine.SECRET_NAMES))
    unknown = [name for name in names if name not in engine.SECRET_NAMES]
    if unknown:
        raise AnsibleFilterError('secret_plan: unknown secret name(s) %s; known: %s'
                                 % (', '.join(unknown), ', '.join(engine.SECRET_NAMES)))
    if state not in ('rotated', 'present'):
        raise AnsibleFilterError('secret_plan: state must be rotated or present, got %s' % state)
    try:
        max_age = parse_duration(max_age) if max_age not in (None, '') and state == 'rotated' else None
    except ValueError as exc:
        raise AnsibleFilterError('secret_plan: max_age: %s' % exc)
    length, min_length = int(length), int(min_length)
    if length < 16:
        raise AnsibleFilterError('secret_plan: length must be at least 16 bytes, got %d' % length)
    if now is None:
        now = utcnow()
    elif not hasattr(now, 'tzinfo'):
        now = parse_iso(now)

    metadata = resource['metadata']
    secret_ref = '%s/%s' % (metadata.get('namespace', ''), metadata.get('name', ''))
    annotations = metadata.get('annotations') or {}
    data = resource.get('data') or {}
    values = {}
    for key in names + [engine.previous_name(name) for name in names]:
        if data.get(key):
            values[key] = _decode(secret_ref, key, data[key])

    reasons, new_values, fingerprints = {}, {}, {}
    for name in names:
        current = values.get(name) or None
        entry = {'rotated_at': annotations.get(rotated_at_annotation(name)),
                 'fingerprint': annotations.get(fingerprint_annotation(name))}
        reason = engine.decide(current, entry, state, min_length, max_age, now,
                               'no matching %s annotation' % fingerprint_annotation(name))
        if reason is not None:
            reasons[name] = reason
            # Generated in check mode too: the patch is then sent as a server-side dry run and never stored.
            new_values[name] = engine.generate(length)
    changed = [name for name in names if name in new_values]

    patch_data, restore_data, patch_ann, restore_ann = {}, {}, {}, {}
    stamp = iso(now)
    for name in changed:
        patch_data[name] = _b64(new_values[name])
        restore_data[name] = data.get(name)
        if keep_previous and state == 'rotated' and values.get(name):
            prev = engine.previous_name(name)
            patch_data[prev] = data[name]
            restore_data[prev] = data.get(prev)
        for key, value in ((rotated_at_annotation(name), stamp),
                           (fingerprint_annotation(name), engine.fingerprint(new_values[name]))):
            patch_ann[key] = value
            restore_ann[key] = annotations.get(key)
        fingerprints[name] = {'before': engine.fingerprint(values.get(name) or None),
                              'after': None if check_mode else engine.fingerprint(new_values[name])}
    for name in names:
        if name not in fingerprints:
            fingerprints[name] = {'before': engine.fingerprint(values.get(name) or None),
                                  'after': engine.fingerprint(values.get(name) or None)}

    if changed:
        verb = 'generate' if state == 'present' else 'rotate'
        msg = '%s %s in Secret %s' % ('would ' + verb if check_mode else verb + 'd', ', '.join(changed), secret_ref)
        if not check_mode:
            msg += '; restart the node to use the new value%s' % ('s' if len(changed) > 1 else '')
    else:
        msg = 'Secret %s: %s unchanged' % (secret_ref, ', '.join(names))
    result = {'changed': bool(changed), 'rotated': changed, 'reasons': reasons, 'fingerprints': fingerprints,
              'restart_required': bool(changed) and not check_mode, 'backup_file': None, 'secret': secret_ref,
              'msg': to_native(msg)}
    patch = {'data': patch_data, 'metadata': {'annotations': patch_ann}} if changed else {}
    restore = {'data': restore_data, 'metadata': {'annotations': restore_ann}} if changed else {}
    return {'result': result, 'patch': patch, 'restore': restore}


class FilterModule(object):

    def filters(self):
        return {'secret_plan': secret_plan}
