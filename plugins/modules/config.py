#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: config
short_description: Validate, change and roll back the Qflow config file
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Manages C(qflow-config.yaml), the YAML config of a Qflow node with the root key C(qflow:).
  - Every document is checked against a schema of the keys documented by Qflow (sections C(engine), C(validation),
    C(sandbox), C(networking), C(nodeSelection), C(storage), C(security), C(monitoring), C(logging), C(dao),
    C(resources)) with their types and ranges, for example C(engine.maxConcurrentFlows) an integer from 1 to 100000,
    C(monitoring.samplingRate) a number from 0 to 1, ports from 1 to 65535, C(logging.level) one of C(debug),
    C(info), C(warn), C(error). Unknown keys are refused, with the closest known key suggested.
    All errors are reported at once, each starting with its key path, for example
    C(qflow.engine.maxConcurrentFlows) C(expected an integer from 1 to 100000, got 'lots').
  - With O(state=present) the resulting document is validated first; an invalid result fails and nothing is written.
    When the result equals the current document nothing is written and the task is not changed. Otherwise the old
    file is copied to C(<backup_dir>/qflow-config.<YYYYmmddTHHMMSSZ>.yaml) (mode C(0600)) and the new file is written
    atomically, keeping the old file's mode and owner.
  - The new file is written by PyYAML, so comments and formatting of the old file are not kept (the backup keeps them).
  - The values of C(security.jwt.secret) and C(security.jwtSecret) are never returned; they show as C(********).
  - The node reads the file at start; restart its service for a change to take effect. This module does not restart it.
requirements:
  - PyYAML on the target
extends_documentation_fragment:
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Validates and computes the diff, the backup id and the changed keys; writes nothing, not even the backup dir.
  diff_mode:
    support: full
    details:
      - The document before and after as YAML text, secrets masked.
options:
  path:
    description:
      - The config file (inventory variable C(qflow_config_path)).
    type: path
    default: /etc/qflow/qflow-config.yaml
  state:
    description:
      - V(present) merges O(settings) into the file, or replaces it with O(content), after validation.
        With O(settings) the file must exist; with O(content) a missing file is created (mode C(0640)).
      - V(validated) validates the file (or O(content), or the file with O(settings) merged) and never writes.
        It fails when the document is invalid.
      - V(rolled_back) restores the backup O(backup_id) byte for byte. The current file is backed up first.
        Not changed when the file is already identical to the backup.
    type: str
    choices: [present, validated, rolled_back]
    default: present
  settings:
    description:
      - Keys to set, as dotted paths relative to C(qflow.) mapped to their values, for example C(engine.maxConcurrentFlows)
        mapped to V(200) (see EXAMPLES). A leading C(qflow.) is accepted too.
      - Merged into the current document (JSON merge patch) - a mapping value merges into the existing section,
        V(null) removes the key (the node then uses its default), any other value replaces.
      - Mutually exclusive with O(content).
    type: dict
  content:
    description:
      - The whole document, root key C(qflow) included. Replaces the current document.
      - Mutually exclusive with O(settings).
    type: dict
  backup_dir:
    description:
      - Directory of the config backups. Created with mode C(0700) when missing.
      - Defaults to C(config-backups) in the directory of O(path).
    type: path
  backup_id:
    description:
      - The backup to restore with O(state=rolled_back), as returned in RV(backup_id) (C(20261127T031245Z)).
        The backup file name C(qflow-config.20261127T031245Z.yaml) is accepted too.
    type: str
  keep_backups:
    description:
      - How many config backups to keep in O(backup_dir); the oldest beyond that number are removed after a change.
        The backup being restored is never removed.
      - V(0) keeps all.
    type: int
    default: 10
notes:
  - Run with C(become=true) when the config file belongs to another user.
  - Only C(engine.maxConcurrentFlows), C(engine.maxMemoryMB), C(logging.level), C(logging.maxFileSize),
    C(logging.maxFiles) and C(validation.cache.enabled) change the behaviour of the reference node; the other keys
    are checked because Qflow's docs define them.
seealso:
  - module: qflow.ops.backup
'''

EXAMPLES = r'''
- name: Raise the flow limit (backup of the old file, diff with --diff)
  qflow.ops.config:
    path: "{{ qflow_config_path }}"
    settings:
      engine.maxConcurrentFlows: 200
      logging.level: warn
  become: true
  register: qflow_config

- name: Restart the node when the config changed (it reads the file at start)
  ansible.builtin.systemd_service:
    name: qflow
    state: restarted
  become: true
  when: qflow_config.changed

- name: Check the file without changing it
  qflow.ops.config:
    path: "{{ qflow_config_path }}"
    state: validated

- name: Go back to the file as it was before the change
  qflow.ops.config:
    path: "{{ qflow_config_path }}"
    state: rolled_back
    backup_id: "{{ qflow_config.backup_id }}"
  become: true

- name: Write the whole document
  qflow.ops.config:
    path: /etc/qflow/qflow-config.yaml
    content:
      qflow:
        engine:
          maxConcurrentFlows: 100
          maxMemoryMB: 2048
        logging:
          level: info
          maxFileSize: 100MB
          maxFiles: 10
  become: true
'''

RETURN = r'''
path:
  description: The config file.
  returned: always
  type: str
  sample: /etc/qflow/qflow-config.yaml
valid:
  description: Whether the document checked is valid (the resulting document for O(state=present)).
  returned: always
  type: bool
  sample: true
errors:
  description:
    - Validation errors, each starting with its key path. Empty when valid.
    - With O(state=rolled_back), the errors of the restored document (the restore is done anyway; a warning is given).
  returned: always
  type: list
  elements: str
  sample: ["qflow.engine.maxConcurentFlows: unknown key (did you mean maxConcurrentFlows?)"]
changed_keys:
  description: Dotted paths relative to C(qflow.) that were (or in check mode would be) added, changed or removed.
  returned: when O(state=present) or O(state=rolled_back)
  type: list
  elements: str
  sample: [engine.maxConcurrentFlows]
backup_id:
  description:
    - Id of the backup of the previous file, for O(backup_id) with O(state=rolled_back). In check mode, the id it would get.
    - V(null) when nothing was backed up (no change, or the file did not exist).
  returned: when O(state=present) or O(state=rolled_back)
  type: str
  sample: 20261127T031245Z
backup_path:
  description: Path of that backup, or V(null).
  returned: when O(state=present) or O(state=rolled_back)
  type: str
  sample: /etc/qflow/config-backups/qflow-config.20261127T031245Z.yaml
removed_backups:
  description: Old backup ids removed (or in check mode that would be removed) because of O(keep_backups).
  returned: when O(state=present) or O(state=rolled_back)
  type: list
  elements: str
  sample: [20261120T020000Z]
restored_id:
  description: The backup that was restored.
  returned: when O(state=rolled_back)
  type: str
  sample: 20261127T031245Z
restored_from:
  description: Path of the backup that was restored.
  returned: when O(state=rolled_back)
  type: str
  sample: /etc/qflow/config-backups/qflow-config.20261127T031245Z.yaml
diff:
  description: The document before and after as YAML text, secrets shown as C(********).
  returned: when O(state=present) or O(state=rolled_back)
  type: dict
  contains:
    before:
      description: The current document (empty when the file does not exist).
      type: str
      sample: "qflow:\n  engine:\n    maxConcurrentFlows: 100\n"
    after:
      description: The resulting document.
      type: str
      sample: "qflow:\n  engine:\n    maxConcurrentFlows: 200\n"
    before_header:
      description: The config file path.
      type: str
      sample: /etc/qflow/qflow-config.yaml
    after_header:
      description: The config file path.
      type: str
      sample: /etc/qflow/qflow-config.yaml
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: updated /etc/qflow/qflow-config.yaml (1 key changed, backup 20261127T031245Z)
'''

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.qflow.ops.plugins.module_utils import _config as engine


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', default='/etc/qflow/qflow-config.yaml'),
            state=dict(type='str', choices=['present', 'validated', 'rolled_back'], default='present'),
            settings=dict(type='dict'),
            content=dict(type='dict'),
            backup_dir=dict(type='path'),
            backup_id=dict(type='str'),
            keep_backups=dict(type='int', default=10),
        ),
        mutually_exclusive=[('settings', 'content')],
        required_if=[('state', 'present', ('settings', 'content'), True), ('state', 'rolled_back', ('backup_id',))],
        supports_check_mode=True,
    )
    if not engine.HAS_YAML:
        module.fail_json(msg=missing_required_lib('PyYAML'), exception=engine.YAML_IMPORT_ERROR)

    p = module.params
    path = p['path']
    backup_dir = p['backup_dir'] or os.path.join(os.path.dirname(path) or '.', 'config-backups')
    result = dict(changed=False, path=path)
    plan = None
    if p['keep_backups'] < 0:
        module.fail_json(msg='keep_backups must be 0 (keep all) or more, got %d' % p['keep_backups'], **result)
    for value in (p['settings'], p['content']):
        _hide_secrets(module, value, relative=value is p['settings'])

    try:
        if p['state'] == 'rolled_back':
            out = engine.rollback(path, backup_dir, p['backup_id'], p['keep_backups'], check_mode=module.check_mode)
            _hide(module, out.pop('secrets'))
            result.update(out)
            result['valid'] = not out['errors']
            if out['errors']:
                module.warn('the restored config of %s is not valid: %s' % (path, '; '.join(out['errors'])))
            module.exit_json(**result)

        if p['state'] == 'validated' and p['settings'] is None and p['content'] is None:
            raw, current, parse_error = engine.load_current(path)
            if raw is None:
                module.fail_json(msg='%s does not exist; check path' % path, valid=False, errors=[], **result)
            _hide(module, engine.secret_values(current))
            errors = [parse_error] if parse_error else engine.validate(current)
        else:
            plan = engine.plan_target(path, settings=p['settings'], content=p['content'])
            _hide(module, engine.secret_values(plan['current']) + engine.secret_values(plan['target']))
            errors = plan['errors']
    except engine.ConfigError as exc:
        module.fail_json(msg=str(exc), **result)

    result['valid'] = not errors
    result['errors'] = errors
    label = 'content' if p['content'] is not None else path + (' with the settings merged' if p['settings'] is not None else '')
    if errors:
        if p['state'] == 'present':
            msg = engine.describe_invalid(path, errors, plan['preexisting'])
        else:
            msg = '%s: invalid config (%d error%s): %s' % (label, len(errors), '' if len(errors) == 1 else 's', '; '.join(errors))
        module.fail_json(msg=msg, **result)
    if p['state'] == 'validated':
        result['msg'] = '%s is valid' % label
        module.exit_json(**result)

    try:
        out = engine.apply_present(path, backup_dir, p['keep_backups'], plan, check_mode=module.check_mode)
    except engine.ConfigError as exc:
        module.fail_json(msg=str(exc), **result)
    result.update(out)
    module.exit_json(**result)


def _hide(module, values):
    for value in values:
        if value:
            module.no_log_values.add(value)


def _hide_secrets(module, value, relative):
    """Register secret values given in the task arguments, before anything can fail."""
    if not isinstance(value, dict):
        return
    if relative:
        try:
            doc = engine.apply_settings({}, value)
        except engine.ConfigError:
            return
    else:
        doc = value
    _hide(module, engine.secret_values(doc))


if __name__ == '__main__':
    main()
