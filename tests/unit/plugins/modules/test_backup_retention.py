# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.backup state=pruned (retention keep_daily / keep_weekly), run through main()."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import qflow_backup_helpers as h  # noqa: E402  (puts the collection on sys.path)

from ansible_collections.qflow.ops.plugins.module_utils import _backup as engine  # noqa: E402
from ansible_collections.qflow.ops.plugins.modules import backup  # noqa: E402

UTC = datetime.timezone.utc
# label -> creation time; ISO weeks: 11-23..11-27 are 2026-W48, 11-20/11-22 W47, 11-10 W46, 11-03 W45, 10-20 W43
TIMES = (
    ('A', datetime.datetime(2026, 11, 27, 18, 0, tzinfo=UTC)),
    ('B', datetime.datetime(2026, 11, 27, 6, 0, tzinfo=UTC)),
    ('C', datetime.datetime(2026, 11, 26, 6, 0, tzinfo=UTC)),
    ('D', datetime.datetime(2026, 11, 25, 6, 0, tzinfo=UTC)),
    ('E', datetime.datetime(2026, 11, 23, 6, 0, tzinfo=UTC)),
    ('F', datetime.datetime(2026, 11, 22, 6, 0, tzinfo=UTC)),
    ('G', datetime.datetime(2026, 11, 20, 6, 0, tzinfo=UTC)),
    ('H', datetime.datetime(2026, 11, 10, 6, 0, tzinfo=UTC)),
    ('I', datetime.datetime(2026, 11, 3, 6, 0, tzinfo=UTC)),
    ('J', datetime.datetime(2026, 10, 20, 6, 0, tzinfo=UTC)),
)


def make_backups(node, node_id='qflow-node-1', times=TIMES):
    """One backup per time; the catalog 'created' is then faked to that time (ids keep the real creation order)."""
    ids = {}
    for label, when in reversed(times):  # oldest first
        made = engine.create_backup(node['backup_dir'], node['data_dir'], node['config_path'], node_id, verify=False, now=when)
        ids[label] = made['id']
    return ids


def fake_created(node, created_by_id):
    path = os.path.join(node['backup_dir'], 'catalog.json')
    with open(path) as handle:
        catalog = json.load(handle)
    for entry in catalog['backups']:
        if entry['id'] in created_by_id:
            entry['created'] = created_by_id[entry['id']]
    engine.write_catalog(node['backup_dir'], catalog)


def archives(node):
    return sorted(n for n in os.listdir(node['backup_dir']) if engine.is_archive_name(n))


def catalog_ids(node):
    with open(os.path.join(node['backup_dir'], 'catalog.json')) as handle:
        return sorted(e['id'] for e in json.load(handle)['backups'])


def test_prune_four_steps(tmp_path):
    node = h.make_node(tmp_path)
    ids = make_backups(node)
    # fake the created timestamps in the catalog: same days, other hours (retention reads the catalog)
    fake_created(node, dict((ids[label], when.replace(hour=when.hour + 1).strftime('%Y-%m-%dT%H:%M:%S.000Z')) for label, when in TIMES))
    args = h.module_args(node, state='pruned', keep_daily=3, keep_weekly=3)
    keep = sorted(ids[k] for k in 'ACDFH')
    drop = sorted(ids[k] for k in 'BEGIJ')
    before = h.dir_state(node['backup_dir'])

    kind, res = h.run_module(backup, args, check_mode=True, diff=True)
    assert kind == 'exit' and res['changed'] is True, res
    assert sorted(res['would_delete']) == drop and 'deleted' not in res
    assert sorted(res['kept']) == keep
    assert res['kept'][ids['A']] == ['newest', 'daily 2026-11-27', 'weekly 2026-W48']
    assert res['kept'][ids['F']] == ['weekly 2026-W47'] and res['kept'][ids['H']] == ['weekly 2026-W46']
    assert res['kept'][ids['D']] == ['daily 2026-11-25']
    assert len(res['diff']['before']['backups']) == 10 and sorted(res['diff']['after']['backups']) == keep
    assert h.dir_state(node['backup_dir']) == before

    kind, res = h.run_module(backup, args, diff=True)
    assert kind == 'exit' and res['changed'] is True and sorted(res['deleted']) == drop, res
    assert catalog_ids(node) == keep
    assert archives(node) == sorted(engine.archive_name(i) for i in keep)
    after = h.dir_state(node['backup_dir'])

    kind, res = h.run_module(backup, args, check_mode=True, diff=True)
    assert kind == 'exit' and res['changed'] is False and res['would_delete'] == [], res
    assert res['diff']['before'] == res['diff']['after']

    kind, res = h.run_module(backup, args)
    assert kind == 'exit' and res['changed'] is False and res['deleted'] == [], res
    assert h.dir_state(node['backup_dir']) == after


def test_prune_keeps_newest_and_touches_only_this_node(tmp_path):
    node = h.make_node(tmp_path)
    ids = make_backups(node, times=TIMES[:4])
    other = make_backups(node, node_id='qflow-node-2', times=TIMES[4:6])
    kind, res = h.run_module(backup, h.module_args(node, state='pruned', keep_daily=0, keep_weekly=0))
    assert kind == 'exit' and res['changed'] is True, res
    assert catalog_ids(node) == sorted([ids['A']] + list(other.values()))
    assert len(archives(node)) == 3


def test_prune_daily_only_counts_days_with_backups(tmp_path):
    node = h.make_node(tmp_path)
    ids = make_backups(node, times=(TIMES[0], TIMES[7], TIMES[8], TIMES[9]))  # 11-27, then a gap, 11-10, 11-03, 10-20
    kind, res = h.run_module(backup, h.module_args(node, state='pruned', keep_daily=3), check_mode=True)
    assert kind == 'exit' and res['would_delete'] == [ids['J']], res


def test_prune_keeps_backups_with_unknown_creation_time(tmp_path):
    node = h.make_node(tmp_path)
    ids = make_backups(node, times=TIMES[:3])
    fake_created(node, {ids['C']: 'not a time'})
    kind, res = h.run_module(backup, h.module_args(node, state='pruned', keep_daily=1))
    assert kind == 'exit' and res['deleted'] == [ids['B']], res
    assert res['kept'][ids['C']] == ['creation time unknown']


def test_prune_argument_errors_and_missing_dir(tmp_path):
    node = h.make_node(tmp_path)
    kind, res = h.run_module(backup, h.module_args(node, state='pruned'))
    assert kind == 'fail' and 'keep_daily' in res['msg'], res
    kind, res = h.run_module(backup, h.module_args(node, state='pruned', keep_daily=-1))
    assert kind == 'fail' and 'keep_daily must be 0 or more' in res['msg'], res
    kind, res = h.run_module(backup, h.module_args(node, state='pruned', keep_weekly=2))
    assert kind == 'exit' and res['changed'] is False and res['deleted'] == [], res
    assert not os.path.exists(node['backup_dir'])
