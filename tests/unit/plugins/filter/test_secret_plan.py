"""Unit tests of qflow.ops.secret_plan: the rotation plan of the secrets in a Kubernetes Secret."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import json

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.qflow.ops.plugins.filter.secrets import FilterModule, secret_plan
from ansible_collections.qflow.ops.plugins.module_utils._secret import fingerprint

NOW = '2026-11-27T03:00:00Z'
OLD = 'old-jwt-secret-value-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
PREV = 'previous-jwt-secret-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB'
KEY = 'encryption-key-CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC'
FP_ANN = 'qflow.ops/QFLOW_JWT_SECRET-fingerprint'
AT_ANN = 'qflow.ops/QFLOW_JWT_SECRET-rotated-at'


def b64(text):
    return base64.b64encode(text.encode()).decode()


def secret(data=None, annotations=None):
    return {'kind': 'Secret', 'apiVersion': 'v1',
            'metadata': {'name': 'qflow-secrets', 'namespace': 'qflow', 'annotations': annotations or {}},
            'data': {k: b64(v) for k, v in (data or {}).items()}}


def test_registered():
    assert set(FilterModule().filters()) == {'secret_plan'}


def test_unknown_age_rotates_with_previous_and_annotations():
    plan = secret_plan(secret({'QFLOW_JWT_SECRET': OLD, 'QFLOW_JWT_SECRET_PREVIOUS': PREV, 'QFLOW_ENCRYPTION_KEY': KEY}),
                       names=['QFLOW_JWT_SECRET'], max_age='6d', now=NOW)
    result = plan['result']
    assert result['changed'] is True and result['rotated'] == ['QFLOW_JWT_SECRET']
    assert result['reasons']['QFLOW_JWT_SECRET'].startswith('age unknown (no matching %s' % FP_ANN)
    assert result['restart_required'] is True and result['backup_file'] is None
    assert result['secret'] == 'qflow/qflow-secrets'
    new = base64.b64decode(plan['patch']['data']['QFLOW_JWT_SECRET']).decode()
    assert new not in (OLD, PREV) and len(new) == 64
    assert plan['patch']['data']['QFLOW_JWT_SECRET_PREVIOUS'] == b64(OLD)
    assert 'QFLOW_ENCRYPTION_KEY' not in plan['patch']['data']
    assert plan['patch']['metadata']['annotations'] == {AT_ANN: '2026-11-27T03:00:00.000Z', FP_ANN: fingerprint(new)}
    assert result['fingerprints'] == {'QFLOW_JWT_SECRET': {'before': fingerprint(OLD), 'after': fingerprint(new)}}
    # the rollback puts back exactly what the patch replaced; null deletes what did not exist
    assert plan['restore'] == {'data': {'QFLOW_JWT_SECRET': b64(OLD), 'QFLOW_JWT_SECRET_PREVIOUS': b64(PREV)},
                               'metadata': {'annotations': {AT_ANN: None, FP_ANN: None}}}


def test_the_result_holds_no_secret_value():
    plan = secret_plan(secret({'QFLOW_JWT_SECRET': OLD, 'QFLOW_JWT_SECRET_PREVIOUS': PREV}), now=NOW)
    text = json.dumps(plan['result'])
    new_values = [base64.b64decode(v).decode() for v in plan['patch']['data'].values()]
    for value in [OLD, PREV] + new_values:
        assert value not in text and b64(value) not in text


def test_recent_value_with_matching_annotation_stays():
    ann = {AT_ANN: '2026-11-25T03:00:00Z', FP_ANN: fingerprint(OLD)}
    plan = secret_plan(secret({'QFLOW_JWT_SECRET': OLD}, ann), names=['QFLOW_JWT_SECRET'], max_age='6d', now=NOW)
    assert plan['result']['changed'] is False and plan['patch'] == {} and plan['restore'] == {}
    assert plan['result']['fingerprints']['QFLOW_JWT_SECRET'] == {'before': fingerprint(OLD), 'after': fingerprint(OLD)}
    assert plan['result']['msg'] == 'Secret qflow/qflow-secrets: QFLOW_JWT_SECRET unchanged'


def test_old_value_rotates_and_a_foreign_change_counts_as_unknown_age():
    ann = {AT_ANN: '2026-11-20T03:00:00Z', FP_ANN: fingerprint(OLD)}
    plan = secret_plan(secret({'QFLOW_JWT_SECRET': OLD}, ann), names=['QFLOW_JWT_SECRET'], max_age='6d', now=NOW)
    assert plan['result']['reasons'] == {'QFLOW_JWT_SECRET': 'older than max_age (7d00h)'}
    assert plan['restore']['data'] == {'QFLOW_JWT_SECRET': b64(OLD), 'QFLOW_JWT_SECRET_PREVIOUS': None}
    assert plan['restore']['metadata']['annotations'] == ann
    changed_by_hand = secret({'QFLOW_JWT_SECRET': PREV}, {AT_ANN: '2026-11-26T03:00:00Z', FP_ANN: fingerprint(OLD)})
    assert 'age unknown' in secret_plan(changed_by_hand, names=['QFLOW_JWT_SECRET'], max_age='6d',
                                        now=NOW)['result']['reasons']['QFLOW_JWT_SECRET']


def test_check_mode_generates_for_the_dry_run_but_reports_no_after():
    plan = secret_plan(secret({'QFLOW_JWT_SECRET': OLD}), names=['QFLOW_JWT_SECRET'], max_age='6d', check_mode=True,
                       now=NOW)
    assert plan['result']['changed'] is True and plan['result']['restart_required'] is False
    assert plan['result']['fingerprints']['QFLOW_JWT_SECRET']['after'] is None
    assert plan['result']['msg'] == 'would rotate QFLOW_JWT_SECRET in Secret qflow/qflow-secrets'
    assert plan['patch']['data']['QFLOW_JWT_SECRET']


def test_missing_key_is_generated_without_previous():
    plan = secret_plan(secret({}), names=['QFLOW_JWT_SECRET', 'QFLOW_ENCRYPTION_KEY'], max_age='6d', now=NOW)
    assert plan['result']['reasons'] == {'QFLOW_JWT_SECRET': 'missing', 'QFLOW_ENCRYPTION_KEY': 'missing'}
    assert sorted(plan['patch']['data']) == ['QFLOW_ENCRYPTION_KEY', 'QFLOW_JWT_SECRET']
    assert plan['restore']['data'] == {'QFLOW_JWT_SECRET': None, 'QFLOW_ENCRYPTION_KEY': None}


def test_present_keeps_a_long_enough_value_whatever_its_age():
    plan = secret_plan(secret({'QFLOW_JWT_SECRET': OLD, 'QFLOW_ENCRYPTION_KEY': 'short'}), state='present', now=NOW)
    assert plan['result']['rotated'] == ['QFLOW_ENCRYPTION_KEY']
    assert plan['result']['reasons'] == {'QFLOW_ENCRYPTION_KEY': 'shorter than min_length 32'}
    assert 'QFLOW_ENCRYPTION_KEY_PREVIOUS' not in plan['patch']['data']


@pytest.mark.parametrize('resource, kwargs, message', [
    (None, {}, 'must be a Secret resource'),
    ({'kind': 'ConfigMap', 'metadata': {}}, {}, 'not a Secret'),
    (secret(), {'names': ['QFLOW_OTHER']}, 'unknown secret name'),
    (secret(), {'max_age': 'soon'}, 'max_age'),
    (secret(), {'length': 8}, 'at least 16'),
    ({'kind': 'Secret', 'metadata': {'name': 's', 'namespace': 'n'}, 'data': {'QFLOW_JWT_SECRET': '%%%'}}, {},
     'not base64'),
])
def test_bad_input_is_refused(resource, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        secret_plan(resource, **kwargs)
