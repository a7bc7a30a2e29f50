# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.deployment and qflow.ops.deployment_info, run through main() on a temp release dir."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os

import pytest

from qflow_module_runner import run_module

from ansible_collections.qflow.ops.plugins.module_utils import _deployment as engine
from ansible_collections.qflow.ops.plugins.modules import deployment, deployment_info


def line(action, version, frm=None, by='ci', minute=0):
    return {'time': '2026-03-01T09:%02d:00.000Z' % minute, 'action': action, 'version': version, 'from': frm, 'by': by}


def make_release_dir(root, versions, current, history):
    """A release dir as the node contract lays it out (relative ``current`` link)."""
    os.makedirs(root)
    for version in versions:
        os.makedirs(os.path.join(root, version))
        with open(os.path.join(root, version, 'release.json'), 'w') as handle:
            json.dump({'version': version, 'createdAt': '2026-03-01T08:00:00.000Z', 'defects': []}, handle)
    if current is not None:
        os.symlink(current, os.path.join(root, 'current'))
    with open(os.path.join(root, 'history.jsonl'), 'w') as handle:
        for entry in history:
            handle.write(json.dumps(entry) + '\n')
    return root


# 0.1.0 deployed and verified, then 0.2.0 deployed (a bad release, never verified): the runbook's rollback case
BAD_DEPLOY = [line('deployed', '0.1.0', by='qflow-lab'), line('verified', '0.1.0', by='qflow-lab', minute=1),
              line('deployed', '0.2.0', '0.1.0', minute=30)]


@pytest.fixture
def rdir(tmp_path):
    return make_release_dir(str(tmp_path / 'releases'), ['0.1.0', '0.2.0'], '0.2.0', BAD_DEPLOY)


def snapshot(root):
    """Everything a run could change: every entry's name, the link targets and the file bytes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                out[path] = ('link', os.readlink(path))
            elif os.path.isfile(path):
                with open(path, 'rb') as handle:
                    out[path] = ('file', handle.read())
            else:
                out[path] = ('dir', None)
    return out


def history(root):
    with open(os.path.join(root, 'history.jsonl')) as handle:
        return [json.loads(text) for text in handle.read().splitlines() if text.strip()]


def current(root):
    return os.readlink(os.path.join(root, 'current'))


# --- state changes, four steps each ----------------------------------------------------------------------------------

def test_rolled_back_to_last_known_good_four_steps(rdir):
    args = {'release_dir': rdir, 'state': 'rolled_back', 'by': 'alice'}
    before = snapshot(rdir)

    # 1. check: would roll back 0.2.0 -> 0.1.0, nothing written
    res, failed = run_module(deployment, args, check_mode=True, diff=True)
    assert not failed and res['changed'] is True, res
    assert (res['previous'], res['target'], res['current']) == ('0.2.0', '0.1.0', '0.1.0')
    assert res['diff'] == {'before': {'current': '0.2.0'}, 'after': {'current': '0.1.0'}}
    assert res['entry']['action'] == 'rolled_back' and res['entry']['from'] == '0.2.0' and res['entry']['by'] == 'alice'
    assert res['history'][-1] == res['entry'] and res['restart_required'] is False
    assert res['known_good'] == [] and 'would' in res['msg']
    assert snapshot(rdir) == before

    # 2. real: current -> 0.1.0 (relative link), one rolled_back line appended, the rest byte for byte
    res, failed = run_module(deployment, args, diff=True)
    assert not failed and res['changed'] is True and res['restart_required'] is True, res
    assert current(rdir) == '0.1.0'
    lines = history(rdir)
    assert lines[:3] == BAD_DEPLOY and len(lines) == 4
    assert {k: lines[3][k] for k in ('action', 'version', 'from', 'by')} == {
        'action': 'rolled_back', 'version': '0.1.0', 'from': '0.2.0', 'by': 'alice'}
    assert lines[3] == res['entry'] and res['release']['version'] == '0.1.0'
    datetime.datetime.strptime(lines[3]['time'], '%Y-%m-%dT%H:%M:%S.%fZ')
    assert sorted(os.listdir(rdir)) == ['0.1.0', '0.2.0', 'current', 'history.jsonl']  # no temp link left
    after = snapshot(rdir)

    # 3. check again, 4. real again: already there, nothing written
    for check in (True, False):
        res, failed = run_module(deployment, args, check_mode=check, diff=True)
        assert not failed and res['changed'] is False and res['entry'] is None, res
        assert res['diff']['before'] == res['diff']['after'] == {'current': '0.1.0'}
        assert snapshot(rdir) == after


def test_rolled_back_to_a_version_four_steps(tmp_path):
    root = make_release_dir(str(tmp_path / 'r'), ['0.1.0', '0.2.0', '0.3.0'], '0.3.0',
                            BAD_DEPLOY + [line('verified', '0.2.0', minute=31), line('deployed', '0.3.0', '0.2.0', minute=40)])
    args = {'release_dir': root, 'state': 'rolled_back', 'version': '0.1.0'}
    before = snapshot(root)
    res, failed = run_module(deployment, args, check_mode=True)
    assert not failed and res['changed'] is True and res['target'] == '0.1.0' and snapshot(root) == before, res
    res, failed = run_module(deployment, args)
    assert not failed and res['changed'] is True and current(root) == '0.1.0', res
    assert history(root)[-1]['from'] == '0.3.0'
    after = snapshot(root)
    for check in (True, False):
        res, failed = run_module(deployment, args, check_mode=check)
        assert not failed and res['changed'] is False and snapshot(root) == after, res


def test_verified_four_steps(rdir):
    run_module(deployment, {'release_dir': rdir, 'state': 'rolled_back'})
    args = {'release_dir': rdir, 'state': 'verified', 'by': 'qflow.ops'}
    before = snapshot(rdir)

    res, failed = run_module(deployment, args, check_mode=True, diff=True)
    assert not failed and res['changed'] is True and res['target'] == '0.1.0', res
    assert res['diff']['before'] == res['diff']['after'] == {'current': '0.1.0'}
    assert res['entry']['action'] == 'verified' and res['entry']['from'] is None and res['known_good'] == ['0.1.0']
    assert snapshot(rdir) == before

    res, failed = run_module(deployment, args, diff=True)
    assert not failed and res['changed'] is True and res['restart_required'] is False, res
    assert current(rdir) == '0.1.0' and len(history(rdir)) == 5
    assert {k: history(rdir)[-1][k] for k in ('action', 'version', 'from', 'by')} == {
        'action': 'verified', 'version': '0.1.0', 'from': None, 'by': 'qflow.ops'}
    after = snapshot(rdir)

    for check in (True, False):
        res, failed = run_module(deployment, args, check_mode=check, diff=True)
        assert not failed and res['changed'] is False and 'verified already' in res['msg'], res
        assert snapshot(rdir) == after


def test_deployed_four_steps(tmp_path):
    root = make_release_dir(str(tmp_path / 'r'), ['0.1.0', '0.2.0'], '0.1.0', BAD_DEPLOY[:2])
    args = {'release_dir': root, 'state': 'deployed', 'version': '0.2.0', 'by': 'ci'}
    before = snapshot(root)

    res, failed = run_module(deployment, args, check_mode=True, diff=True)
    assert not failed and res['changed'] is True and res['current'] == '0.2.0', res
    assert res['diff'] == {'before': {'current': '0.1.0'}, 'after': {'current': '0.2.0'}}
    assert snapshot(root) == before

    res, failed = run_module(deployment, args, diff=True)
    assert not failed and res['changed'] is True and res['restart_required'] is True, res
    assert current(root) == '0.2.0'
    assert {k: history(root)[-1][k] for k in ('action', 'version', 'from', 'by')} == {
        'action': 'deployed', 'version': '0.2.0', 'from': '0.1.0', 'by': 'ci'}
    assert res['known_good'] == ['0.1.0']
    after = snapshot(root)

    for check in (True, False):
        res, failed = run_module(deployment, args, check_mode=check, diff=True)
        assert not failed and res['changed'] is False and snapshot(root) == after, res


# --- bad inputs: a clear error and nothing changed --------------------------------------------------------------------

def assert_refused(root, args, *needles, check_mode=False):
    before = snapshot(root) if os.path.lexists(root) else None
    res, failed = run_module(deployment, args, check_mode=check_mode)
    assert failed and res.get('changed', False) is False, res
    for needle in needles:
        assert needle in res['msg'], res['msg']
    assert (snapshot(root) if os.path.lexists(root) else None) == before
    return res


@pytest.mark.parametrize('check_mode', [False, True])
def test_unknown_version_lists_known_versions(rdir, check_mode):
    assert_refused(rdir, {'release_dir': rdir, 'state': 'rolled_back', 'version': '9.9.9'},
                   'unknown version 9.9.9', 'known versions: 0.1.0, 0.2.0', 'nothing was changed', check_mode=check_mode)
    assert_refused(rdir, {'release_dir': rdir, 'state': 'deployed', 'version': '9.9.9'},
                   'unknown version 9.9.9', check_mode=check_mode)


@pytest.mark.parametrize('version', ['../0.1.0', 'current', '.hidden', 'a/b'])
def test_version_that_is_not_a_release_name(rdir, version):
    assert_refused(rdir, {'release_dir': rdir, 'state': 'rolled_back', 'version': version},
                   'is not a release name', 'known versions: 0.1.0, 0.2.0')


def test_no_last_known_good(tmp_path):
    root = make_release_dir(str(tmp_path / 'r'), ['0.1.0', '0.2.0'], '0.2.0',
                            [line('deployed', '0.1.0'), line('deployed', '0.2.0', '0.1.0', minute=5),
                             line('verified', '0.2.0', minute=6)])
    assert_refused(root, {'release_dir': root, 'state': 'rolled_back'},
                   'no verified release other than the current one', 'pass version')


def test_release_dir_missing(tmp_path):
    missing = str(tmp_path / 'nope')
    res = assert_refused(missing, {'release_dir': missing, 'state': 'rolled_back'},
                         'release dir %s does not exist' % missing, 'qflow_release_dir', engine.CONTRACT)
    assert not os.path.lexists(missing)
    res, failed = run_module(deployment_info, {'release_dir': missing})
    assert failed and 'does not exist' in res['msg'] and not os.path.lexists(missing)


def test_release_dir_without_current(tmp_path):
    root = make_release_dir(str(tmp_path / 'r'), ['0.1.0'], None, [])
    assert_refused(root, {'release_dir': root, 'state': 'verified'}, 'current does not exist', engine.CONTRACT)


def test_current_that_is_not_a_symlink(tmp_path):
    root = make_release_dir(str(tmp_path / 'r'), ['0.1.0'], None, [])
    os.makedirs(os.path.join(root, 'current'))
    assert_refused(root, {'release_dir': root, 'state': 'rolled_back', 'version': '0.1.0'},
                   'current is not a symlink', engine.CONTRACT)


def test_target_without_release_json(rdir):
    os.unlink(os.path.join(rdir, '0.1.0', 'release.json'))
    assert_refused(rdir, {'release_dir': rdir, 'state': 'rolled_back', 'version': '0.1.0'},
                   'release 0.1.0 cannot be used: no release.json')
    # and the last known good has no release.json any more: it is no candidate
    assert_refused(rdir, {'release_dir': rdir, 'state': 'rolled_back'}, 'no verified release other than the current one')


def test_target_with_broken_release_json(rdir):
    with open(os.path.join(rdir, '0.1.0', 'release.json'), 'w') as handle:
        handle.write('{not json')
    assert_refused(rdir, {'release_dir': rdir, 'state': 'deployed', 'version': '0.1.0'}, 'release.json is not JSON')


def test_deployed_requires_version(rdir):
    assert_refused(rdir, {'release_dir': rdir, 'state': 'deployed'}, 'state is deployed but all of the following are missing: version')


def test_verified_without_readable_release(tmp_path):
    root = make_release_dir(str(tmp_path / 'r'), ['0.1.0'], '0.9.9', [line('deployed', '0.1.0')])
    assert_refused(root, {'release_dir': root, 'state': 'verified'}, 'current release 0.9.9 has no readable release.json')


def test_negative_limit(rdir):
    assert_refused(rdir, {'release_dir': rdir, 'state': 'verified', 'limit': -1}, 'limit must be 0')


# --- history and known good -------------------------------------------------------------------------------------------

def releases_of(*names):
    return {name: {'release': {'version': name}} for name in names}


def test_known_good_rules():
    hist = [line('deployed', '0.1.0'), line('verified', '0.1.0', minute=1),
            line('deployed', '0.2.0', '0.1.0', minute=2), line('verified', '0.2.0', minute=3),
            line('deployed', '0.3.0', '0.2.0', minute=4), line('verified', '0.3.0', minute=5)]
    rel = releases_of('0.1.0', '0.2.0', '0.3.0')
    # most recently verified first; a later deploy of another version does not affect a version
    assert engine.known_good(hist, rel) == ['0.3.0', '0.2.0', '0.1.0']
    assert engine.known_good(hist, rel, exclude='0.3.0') == ['0.2.0', '0.1.0']
    # rolling back away from a release counts against it, the release rolled back to is not known good until verified
    rolled = hist + [line('rolled_back', '0.2.0', '0.3.0', minute=6)]
    assert engine.known_good(rolled, rel) == ['0.1.0']
    assert engine.known_good(rolled + [line('verified', '0.2.0', minute=7)], rel) == ['0.2.0', '0.1.0']
    # verified again later makes a release the most recent known good
    assert engine.known_good(hist + [line('verified', '0.1.0', minute=8)], rel) == ['0.1.0', '0.3.0', '0.2.0']
    # a deploy that was never verified is not known good
    assert engine.known_good(hist + [line('deployed', '0.2.0', '0.3.0', minute=9)], rel) == ['0.3.0', '0.1.0']
    # a release whose dir is gone (or has no release.json) is no candidate
    assert engine.known_good(hist, releases_of('0.1.0', '0.3.0')) == ['0.3.0', '0.1.0']


def test_already_rolled_back_rule():
    base = [line('deployed', '0.1.0'), line('verified', '0.1.0'), line('deployed', '0.2.0', '0.1.0')]
    assert engine.already_rolled_back(base, '0.2.0') is False
    rolled = base + [line('rolled_back', '0.1.0', '0.2.0')]
    assert engine.already_rolled_back(rolled, '0.1.0') is True
    assert engine.already_rolled_back(rolled + [line('verified', '0.1.0')], '0.1.0') is True
    assert engine.already_rolled_back(rolled + [line('verified', '0.1.0'), line('deployed', '0.3.0', '0.1.0')], '0.3.0') is False
    assert engine.already_rolled_back([], '0.1.0') is False


def test_second_rollback_without_version_does_not_go_further_back(tmp_path):
    """After a rollback (and its verify), a rerun of the rollback is a no-op, not a rollback to an even older release."""
    hist = [line('deployed', '0.0.9'), line('verified', '0.0.9', minute=1)] + BAD_DEPLOY
    root = make_release_dir(str(tmp_path / 'r'), ['0.0.9', '0.1.0', '0.2.0'], '0.2.0', hist)
    res, failed = run_module(deployment, {'release_dir': root, 'state': 'rolled_back'})
    assert not failed and res['target'] == '0.1.0' and current(root) == '0.1.0', res
    res, failed = run_module(deployment, {'release_dir': root, 'state': 'verified'})
    assert not failed and res['changed'] is True
    assert res['known_good'] == ['0.1.0', '0.0.9']
    after = snapshot(root)
    res, failed = run_module(deployment, {'release_dir': root, 'state': 'rolled_back'})
    assert not failed and res['changed'] is False and res['target'] == '0.1.0', res
    assert any('pass version' in w for w in res['_warnings']) and snapshot(root) == after
    # going further back needs the version
    res, failed = run_module(deployment, {'release_dir': root, 'state': 'rolled_back', 'version': '0.0.9'})
    assert not failed and res['changed'] is True and current(root) == '0.0.9'


def test_rollback_of_a_verified_release_that_went_bad(tmp_path):
    """A deploy that passed its checks and later proves bad is rolled back to the release before it."""
    hist = BAD_DEPLOY + [line('verified', '0.2.0', minute=31)]
    root = make_release_dir(str(tmp_path / 'r'), ['0.1.0', '0.2.0'], '0.2.0', hist)
    res, failed = run_module(deployment, {'release_dir': root, 'state': 'rolled_back'})
    assert not failed and res['changed'] is True and current(root) == '0.1.0' and res['known_good'] == [], res


def test_rollback_to_a_release_that_is_not_known_good_warns(tmp_path):
    root = make_release_dir(str(tmp_path / 'r'), ['0.1.0', '0.2.0', '0.3.0'], '0.2.0', BAD_DEPLOY)
    res, failed = run_module(deployment, {'release_dir': root, 'state': 'rolled_back', 'version': '0.3.0'})
    assert not failed and res['changed'] is True and current(root) == '0.3.0'
    assert any('0.3.0 is not known good' in w for w in res['_warnings'])


def test_bad_history_lines_are_skipped_and_reported(rdir):
    with open(os.path.join(rdir, 'history.jsonl'), 'a') as handle:
        handle.write('garbage\n{"action": "exploded", "version": "0.2.0"}\n[1]\n{"action": "verified"}')  # no final newline
    res, failed = run_module(deployment_info, {'release_dir': rdir})
    assert not failed and res['history'] == BAD_DEPLOY and res['history_total'] == 3, res
    assert any('4 line(s)' in w for w in res['_warnings'])
    # appending after a last line without newline keeps both lines apart
    res, failed = run_module(deployment, {'release_dir': rdir, 'state': 'rolled_back'})
    assert not failed and res['changed'] is True
    with open(os.path.join(rdir, 'history.jsonl')) as handle:
        text = handle.read().splitlines()
    assert text[-2] == '{"action": "verified"}' and json.loads(text[-1])['action'] == 'rolled_back'


def test_history_limit(rdir):
    res, failed = run_module(deployment_info, {'release_dir': rdir, 'limit': 2})
    assert not failed and res['history'] == BAD_DEPLOY[-2:]
    res, failed = run_module(deployment_info, {'release_dir': rdir, 'limit': 0})
    assert not failed and res['history'] == BAD_DEPLOY
    res, failed = run_module(deployment, {'release_dir': rdir, 'state': 'rolled_back', 'limit': 1}, check_mode=True)
    assert not failed and len(res['history']) == 1 and res['history'][0]['action'] == 'rolled_back'


def test_missing_history_file_is_an_empty_history(tmp_path):
    root = make_release_dir(str(tmp_path / 'r'), ['0.1.0'], '0.1.0', [])
    os.unlink(os.path.join(root, 'history.jsonl'))
    res, failed = run_module(deployment_info, {'release_dir': root})
    assert not failed and res['history'] == [] and res['known_good'] == [] and res['last_known_good'] is None
    res, failed = run_module(deployment, {'release_dir': root, 'state': 'verified'})
    assert not failed and res['changed'] is True and [e['action'] for e in history(root)] == ['verified']
    assert oct(os.stat(os.path.join(root, 'history.jsonl')).st_mode & 0o777) == '0o644'


# --- deployment_info ----------------------------------------------------------------------------------------------------

def test_info_reports_everything_and_never_writes(rdir):
    os.makedirs(os.path.join(rdir, '0.10.0'))  # a release dir without release.json
    before = snapshot(rdir)
    for check in (False, True):
        res, failed = run_module(deployment_info, {'release_dir': rdir}, check_mode=check)
        assert not failed and res['changed'] is False, res
        assert res['current'] == '0.2.0' and res['release']['version'] == '0.2.0'
        assert res['known_good'] == ['0.1.0'] and res['last_known_good'] == '0.1.0'
        assert res['history'] == BAD_DEPLOY and res['history_total'] == 3
        assert [r['version'] for r in res['releases']] == ['0.1.0', '0.2.0', '0.10.0']
        by_name = {r['version']: r for r in res['releases']}
        assert by_name['0.2.0']['current'] is True and by_name['0.1.0']['known_good'] is True
        assert by_name['0.1.0']['release'] == {'version': '0.1.0', 'createdAt': '2026-03-01T08:00:00.000Z', 'defects': []}
        assert by_name['0.10.0']['release'] is None and by_name['0.10.0']['error'] == 'no release.json'
        assert snapshot(rdir) == before


def test_info_current_is_known_good_but_not_last_known_good(tmp_path):
    root = make_release_dir(str(tmp_path / 'r'), ['0.1.0'], '0.1.0', BAD_DEPLOY[:2])
    res, failed = run_module(deployment_info, {'release_dir': root})
    assert not failed and res['known_good'] == ['0.1.0'] and res['last_known_good'] is None


# --- the atomic switch --------------------------------------------------------------------------------------------------

def test_switch_renames_a_temp_link_over_current(rdir, monkeypatch):
    calls = []
    real_replace = os.replace

    def spy(src, dst):
        calls.append((src, dst, os.readlink(src), os.readlink(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(engine.os, 'replace', spy)
    engine.switch(rdir, '0.1.0')
    assert len(calls) == 1
    src, dst, new_target, old_target = calls[0]
    assert os.path.dirname(src) == rdir and os.path.basename(src).startswith('.current.tmp-')
    assert dst == os.path.join(rdir, 'current') and (new_target, old_target) == ('0.1.0', '0.2.0')
    assert current(rdir) == '0.1.0' and not os.path.lexists(src)


def test_failed_switch_changes_nothing(rdir, monkeypatch):
    before = snapshot(rdir)

    def broken(src, dst):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(engine.os, 'replace', broken)
    res, failed = run_module(deployment, {'release_dir': rdir, 'state': 'rolled_back'})
    assert failed and 'cannot repoint' in res['msg'] and 'current was not changed' in res['msg'], res
    assert res['changed'] is False and res['current'] == '0.2.0'
    assert snapshot(rdir) == before  # no temp link, the history line was taken back


def test_unwritable_history_changes_nothing(rdir, monkeypatch):
    before = snapshot(rdir)

    def broken(*args, **kwargs):
        raise OSError(13, 'Permission denied')

    monkeypatch.setattr(engine.os, 'open', broken)
    res, failed = run_module(deployment, {'release_dir': rdir, 'state': 'rolled_back'})
    assert failed and 'cannot append' in res['msg'] and 'become' in res['msg'] and res['changed'] is False, res
    assert snapshot(rdir) == before
