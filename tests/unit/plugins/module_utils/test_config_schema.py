# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the qflow-config.yaml schema and the merge/backup helpers in module_utils/_config.py."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.qflow.ops.plugins.module_utils import _config as c

DOCUMENTED = {'qflow': {
    'engine': {'maxConcurrentFlows': 100, 'defaultTimeout': 300000, 'checkpointInterval': 30000, 'enableDistributedExecution': True,
               'maxMemoryMB': 2048, 'gcThresholdMB': 1024, 'maxCpuCores': 4, 'cpuThrottleThreshold': 80, 'gcInterval': 30000,
               'gcThreshold': 80, 'workerThreads': 4,
               'cache': {'enabled': True, 'maxFlows': 1000, 'ttlSeconds': 3600, 'preloadPopular': True}},
    'validation': {'enablePipeline': True, 'timeoutPerLayer': 5000, 'retryAttempts': 3, 'enableCache': True, 'cacheExpirationMs': 300000,
                   'cache': {'enabled': True, 'maxSize': 10000, 'ttlSeconds': 300, 'compressionEnabled': True}},
    'sandbox': {'wasmRuntime': 'wasmtime', 'maxMemoryMB': 128, 'maxExecutionTimeMs': 30000, 'allowedModules': ['dao-approved'],
                'enableNetworkAccess': False, 'memoryLimitPerFlow': 64, 'maxCpuTime': 30000, 'cpuLimitPerFlow': 1000},
    'networking': {'libp2pPort': 4001, 'apiPort': 8080, 'metricsPort': 9090, 'enableTLS': True, 'tlsCertPath': '/etc/qflow/tls.crt',
                   'tlsKeyPath': '/etc/qflow/tls.key', 'tlsMinVersion': '1.2', 'enableRelay': True, 'enableAutoRelay': True,
                   'bootstrapPeers': ['/ip4/10.0.0.1/tcp/4001/p2p/QmPeer'], 'connectionPoolSize': 50, 'keepAliveTimeout': 30000},
    'nodeSelection': {'preferLowLatency': True, 'maxLatencyMs': 100},
    'storage': {'ipfsApiUrl': 'http://localhost:5001', 'enableEncryption': True, 'compressionLevel': 6},
    'security': {'enableAuthentication': True, 'jwtExpirationHours': 24, 'enableRateLimiting': True, 'maxRequestsPerMinute': 100,
                 'jwtSecret': 'x' * 32,
                 'jwt': {'secret': 'y' * 32, 'expirationHours': 24, 'issuer': 'qflow', 'audience': 'qflow-users'},
                 'squid': {'serviceUrl': 'http://squid:3000', 'enableSubIdentities': True, 'requireSignatures': True},
                 'auditLogging': {'enabled': True, 'logLevel': 'info', 'includePayloads': False, 'retentionDays': 90}},
    'monitoring': {'enableMetrics': True, 'enableTracing': True, 'enableLogging': True, 'logLevel': 'info', 'metricsInterval': 10000,
                   'enableDetailedMetrics': True, 'samplingRate': 0.1},
    'logging': {'level': 'info', 'maxFileSize': '100MB', 'maxFiles': 10, 'enableRotation': True, 'enableCompression': True},
    'dao': {'enableSubnets': True, 'defaultSubnet': 'default', 'enableGovernance': True},
    'resources': {'cpu': '4000m', 'memory': '8Gi'},
}}


def _doc(section, key, value):
    return {'qflow': {section: {key: value}}}


def test_every_documented_key_with_its_default_is_valid():
    assert c.validate(DOCUMENTED) == []
    # the fixture covers the whole schema
    leaves = list(c._leaves(DOCUMENTED['qflow'], '', {}))
    assert sorted(leaves) == sorted(c.known_keys())


def test_empty_sections_and_empty_qflow_are_valid():
    assert c.validate({'qflow': {}}) == []
    assert c.validate({'qflow': {'engine': {}}}) == []


@pytest.mark.parametrize('doc, expected', [
    (None, '(document): the file is empty'),
    (['qflow'], '(document): expected a mapping with the root key qflow, got a list'),
    ({'engine': {}}, 'qflow: missing'),
    ({'qflow': None}, 'qflow: expected a mapping, got null'),
    ({'qflow': {'engine': 5}}, 'qflow.engine: expected a mapping, got 5'),
])
def test_document_shape(doc, expected):
    errors = c.validate(doc)
    assert any(e.startswith(expected) for e in errors), errors


@pytest.mark.parametrize('section, key, value, expected', [
    ('engine', 'maxConcurrentFlows', 'lots', "qflow.engine.maxConcurrentFlows: expected an integer from 1 to 100000, got 'lots'"),
    ('engine', 'maxConcurrentFlows', 0, 'qflow.engine.maxConcurrentFlows: expected an integer from 1 to 100000, got 0'),
    ('engine', 'maxConcurrentFlows', 100001, 'qflow.engine.maxConcurrentFlows: expected an integer from 1 to 100000, got 100001'),
    ('engine', 'maxConcurrentFlows', 200.0, 'qflow.engine.maxConcurrentFlows: expected an integer from 1 to 100000, got 200'),
    ('engine', 'maxConcurrentFlows', True, 'qflow.engine.maxConcurrentFlows: expected an integer from 1 to 100000, got true'),
    ('engine', 'maxMemoryMB', 32, 'qflow.engine.maxMemoryMB: expected an integer from 64 to 1048576, got 32'),
    ('validation', 'timeoutPerLayer', 99, 'qflow.validation.timeoutPerLayer: expected an integer from 100 to 3600000, got 99'),
    ('monitoring', 'samplingRate', 1.5, 'qflow.monitoring.samplingRate: expected a number from 0 to 1, got 1.5'),
    ('monitoring', 'samplingRate', '0.1', "qflow.monitoring.samplingRate: expected a number from 0 to 1, got '0.1'"),
    ('networking', 'apiPort', 70000, 'qflow.networking.apiPort: expected an integer from 1 to 65535, got 70000'),
    ('networking', 'metricsPort', 0, 'qflow.networking.metricsPort: expected an integer from 1 to 65535, got 0'),
    ('networking', 'tlsMinVersion', '1.1', "qflow.networking.tlsMinVersion: expected one of 1.2, 1.3, got '1.1'"),
    ('networking', 'enableTLS', 'yes', "qflow.networking.enableTLS: expected a boolean (true or false), got 'yes'"),
    ('networking', 'bootstrapPeers', '/ip4/1.2.3.4', "qflow.networking.bootstrapPeers: expected a list of multiaddrs, got '/ip4/1.2.3.4'"),
    ('logging', 'level', 'fatal', "qflow.logging.level: expected one of debug, info, warn, error, got 'fatal'"),
    ('logging', 'maxFileSize', 'big', "qflow.logging.maxFileSize: expected a size such as 100MB"),
    ('sandbox', 'wasmRuntime', 'v8', "qflow.sandbox.wasmRuntime: expected one of wasmtime, wasmer, wasmedge, wasm3, got 'v8'"),
    ('storage', 'ipfsApiUrl', 'localhost:5001', "qflow.storage.ipfsApiUrl: expected an http:// or https:// URL, got 'localhost:5001'"),
    ('storage', 'compressionLevel', 10, 'qflow.storage.compressionLevel: expected an integer from 0 to 9, got 10'),
    ('resources', 'memory', '8 gigs', "qflow.resources.memory: expected a Kubernetes quantity such as 4000m, 4 or 8Gi, got '8 gigs'"),
    ('dao', 'defaultSubnet', '', "qflow.dao.defaultSubnet: expected a non-empty string, got ''"),
])
def test_type_and_range_errors_name_the_key_path(section, key, value, expected):
    errors = c.validate(_doc(section, key, value))
    assert len(errors) == 1 and errors[0].startswith(expected), errors


@pytest.mark.parametrize('section, key, value', [
    ('networking', 'tlsMinVersion', 1.3),  # unquoted in YAML
    ('networking', 'tlsMinVersion', '1.3'),
    ('monitoring', 'samplingRate', 0),
    ('monitoring', 'samplingRate', 1),
    ('logging', 'maxFileSize', 1048576),
    ('logging', 'maxFileSize', '512kb'),
    ('resources', 'cpu', 4),
    ('engine', 'maxConcurrentFlows', 100000),
])
def test_accepted_edge_values(section, key, value):
    assert c.validate(_doc(section, key, value)) == []


def test_unknown_keys_suggest_the_closest_known_key():
    errors = c.validate({'qflow': {'engine': {'maxConcurentFlows': 5}, 'loging': {}, 'extra': 1}, 'other': {}})
    assert errors == [
        'qflow.engine.maxConcurentFlows: unknown key (did you mean maxConcurrentFlows?)',
        'qflow.loging: unknown key (did you mean logging?)',
        'qflow.extra: unknown key (known keys here: engine, validation, sandbox, networking, nodeSelection, storage, security, '
        'monitoring, logging, dao, resources)',
        'other: unknown key (known keys here: qflow)',
    ]


def test_all_errors_are_collected_in_document_order():
    doc = {'qflow': {'engine': {'maxConcurrentFlows': 'lots', 'maxMemoryMB': 1}, 'logging': {'level': 'loud', 'maxFiles': 0},
                     'networking': {'bootstrapPeers': ['/ip4/1.2.3.4', 'peer-2', 7]}}}
    errors = c.validate(doc)
    assert [e.split(':')[0] for e in errors] == [
        'qflow.engine.maxConcurrentFlows', 'qflow.engine.maxMemoryMB', 'qflow.logging.level', 'qflow.logging.maxFiles',
        'qflow.networking.bootstrapPeers[1]', 'qflow.networking.bootstrapPeers[2]']


def test_secret_values_are_never_shown_in_errors():
    errors = c.validate({'qflow': {'security': {'jwtSecret': 12345678, 'jwt': {'secret': ['hunter2']}}}})
    assert errors == ['qflow.security.jwtSecret: expected a non-empty string, got a hidden value',
                      'qflow.security.jwt.secret: expected a non-empty string, got a hidden value']
    assert '12345678' not in str(errors) and 'hunter2' not in str(errors)


def test_masked_and_secret_values():
    doc = {'qflow': {'security': {'jwtSecret': 'aaa', 'jwt': {'secret': 'bbb', 'issuer': 'qflow'}}}}
    assert sorted(c.secret_values(doc)) == ['aaa', 'bbb']
    shown = c.masked(doc)
    assert shown['qflow']['security'] == {'jwtSecret': '********', 'jwt': {'secret': '********', 'issuer': 'qflow'}}
    assert doc['qflow']['security']['jwtSecret'] == 'aaa'  # a copy
    assert c.secret_values({'qflow': {}}) == [] and c.masked(None) is None


def test_settings_merge_patch():
    doc = {'qflow': {'engine': {'maxConcurrentFlows': 100, 'maxMemoryMB': 2048}, 'logging': {'level': 'info'}}}
    new = c.apply_settings(doc, {'engine.maxConcurrentFlows': 200, 'qflow.logging.maxFiles': 5, 'engine.maxMemoryMB': None,
                                 'validation.cache': {'enabled': False}})
    assert new == {'qflow': {'engine': {'maxConcurrentFlows': 200}, 'logging': {'level': 'info', 'maxFiles': 5},
                             'validation': {'cache': {'enabled': False}}}}
    assert doc['qflow']['engine'] == {'maxConcurrentFlows': 100, 'maxMemoryMB': 2048}  # not modified
    assert c.changed_keys(doc, new) == ['engine.maxConcurrentFlows', 'logging.maxFiles', 'validation.cache.enabled', 'engine.maxMemoryMB']
    with pytest.raises(c.ConfigError, match='empty path segment'):
        c.apply_settings(doc, {'engine..maxConcurrentFlows': 1})


def test_same_is_type_aware():
    assert c.same({'a': 1}, {'a': 1})
    assert not c.same({'a': 1}, {'a': 1.0})
    assert not c.same({'a': 1}, {'a': True})
    assert not c.same({1: 'x', 'a': 1}, {'1': 'x', 'a': 1})  # mixed key types do not break the comparison


def test_backup_ids_sort_and_prune(tmp_path):
    d = str(tmp_path)
    for name in ('qflow-config.20261127T031245Z.yaml', 'qflow-config.20261127T031245Z-2.yaml', 'qflow-config.20261127T031245Z-10.yaml',
                 'qflow-config.20261126T000000Z.yaml', 'qflow-config.garbage.yaml', 'other.yaml'):
        open(os.path.join(d, name), 'w').close()
    ids = c.list_backups(d)
    assert ids == ['20261126T000000Z', '20261127T031245Z', '20261127T031245Z-2', '20261127T031245Z-10']
    assert c.prune_plan(ids, 2) == ['20261126T000000Z', '20261127T031245Z']
    assert c.prune_plan(ids, 2, protect=('20261126T000000Z',)) == ['20261127T031245Z']
    assert c.prune_plan(ids, 0) == [] and c.prune_plan(ids, 10) == []


def test_find_backup_refuses_paths_and_lists_available(tmp_path):
    d = str(tmp_path)
    open(os.path.join(d, 'qflow-config.20261127T031245Z.yaml'), 'w').close()
    assert c.find_backup(d, 'qflow-config.20261127T031245Z.yaml').endswith('qflow-config.20261127T031245Z.yaml')
    with pytest.raises(c.ConfigError, match=r"backup_id '../../etc/shadow' is not a config backup id .*available: 20261127T031245Z"):
        c.find_backup(d, '../../etc/shadow')
    with pytest.raises(c.ConfigError, match='backup 20200101T000000Z not found in .*available: 20261127T031245Z'):
        c.find_backup(d, '20200101T000000Z')
    with pytest.raises(c.ConfigError, match='there are no backups in'):
        c.find_backup(str(tmp_path / 'none'), '20200101T000000Z')


def test_new_backup_id_never_reuses_a_pruned_name(tmp_path):
    import datetime
    d = str(tmp_path)
    now = datetime.datetime(2026, 11, 27, 3, 12, 45, tzinfo=datetime.timezone.utc)
    assert c.new_backup_id(d, now) == '20261127T031245Z'
    first = c.write_backup(d, b'a', now)
    second = c.write_backup(d, b'b', now)
    assert (first, second) == ('20261127T031245Z', '20261127T031245Z-2')
    c.remove_backups(d, [first])
    assert c.write_backup(d, b'c', now) == '20261127T031245Z-3'
    assert c.list_backups(d) == ['20261127T031245Z-2', '20261127T031245Z-3']
    assert oct(os.stat(os.path.join(d, c.backup_name(second))).st_mode & 0o777) == '0o600'
