# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: the release directory of a Qflow node (node contract, Releases). May change without notice.

Layout: ``<dir>/<version>/release.json``, ``<dir>/current`` a symlink to ``<version>`` (relative target) and
``<dir>/history.jsonl``, one ``{"time", "action", "version", "from", "by"}`` object per line.

"Known good": a version whose latest history line concerning it is ``verified``. A line concerns a version when its
``version`` is that version, or when it is a ``rolled_back`` line whose ``from`` is that version (rolling back away
from a release is evidence against it). The last known good is the known good release, other than the current one,
that was verified most recently (history order), and whose release dir still holds a release.json.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import uuid

from ansible_collections.qflow.ops.plugins.module_utils._files import fsync_dir
from ansible_collections.qflow.ops.plugins.module_utils._time import iso

CONTRACT = 'node contract section 2.5 Releases, docs/qflow-node-contract.md'
CURRENT = 'current'
HISTORY = 'history.jsonl'
RELEASE_FILE = 'release.json'
ACTIONS = ('deployed', 'rolled_back', 'verified')


class DeploymentError(Exception):
    """The release dir cannot be used as asked; the message says why and what to do."""


def valid_name(version):
    """A version names a directory right under the release dir: no path separator, not hidden, not 'current'."""
    return (isinstance(version, str) and version not in ('', '.', '..', CURRENT, HISTORY)
            and '/' not in version and '\0' not in version and not version.startswith('.'))


def _read_release(path):
    """(release.json content, error or None) of one release dir."""
    file_path = os.path.join(path, RELEASE_FILE)
    try:
        with open(file_path, 'rb') as handle:
            data = json.loads(handle.read().decode('utf-8'))
    except (IOError, OSError) as exc:
        if not os.path.exists(file_path):
            return None, 'no %s' % RELEASE_FILE
        return None, 'cannot read %s: %s' % (RELEASE_FILE, exc)
    except ValueError as exc:
        return None, '%s is not JSON: %s' % (RELEASE_FILE, exc)
    if not isinstance(data, dict):
        return None, '%s is not a JSON object' % RELEASE_FILE
    return data, None


def read_history(path):
    """(entries, number of lines that are not a history object). A missing file is an empty history."""
    entries, bad = [], 0
    try:
        with open(path, 'rb') as handle:
            raw = handle.read()
    except (IOError, OSError) as exc:
        if not os.path.exists(path):
            return [], 0
        raise DeploymentError('cannot read %s: %s' % (path, exc))
    for line in raw.decode('utf-8', 'replace').splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get('version'), str) or entry.get('action') not in ACTIONS:
            bad += 1
            continue
        entries.append({'time': entry.get('time'), 'action': entry['action'], 'version': entry['version'],
                        'from': entry.get('from'), 'by': entry.get('by')})
    return entries, bad


def concerns(entry, version):
    return entry['version'] == version or (entry['action'] == 'rolled_back' and entry.get('from') == version)


def known_good(history, releases, exclude=None):
    """Known good versions with a usable release dir, most recently verified first; ``exclude`` left out."""
    last = {}
    verified_at = {}
    for index, entry in enumerate(history):
        last[entry['version']] = entry['action']
        if entry['action'] == 'verified':
            verified_at[entry['version']] = index
        if entry['action'] == 'rolled_back' and entry.get('from'):
            last[entry['from']] = 'rolled_back_from'
    good = [v for v, action in last.items()
            if action == 'verified' and v != exclude and releases.get(v, {}).get('release') is not None]
    return sorted(good, key=lambda v: verified_at[v], reverse=True)


def already_rolled_back(history, current):
    """True when the last line that is not a ``verified`` of ``current`` is a ``rolled_back`` to ``current``."""
    for entry in reversed(history):
        if entry['action'] == 'verified' and entry['version'] == current:
            continue
        return entry['action'] == 'rolled_back' and entry['version'] == current
    return False


def read_state(release_dir):
    """Everything about a release dir. Never writes.

    Returns {release_dir, current, current_release, releases {name: {version, path, release, error}}, history,
    history_errors}. Raises DeploymentError when the dir or its ``current`` link is missing or not as the contract says.
    """
    if not os.path.isdir(release_dir):
        raise DeploymentError('release dir %s does not exist (or is not a directory); set release_dir (inventory '
                              'variable qflow_release_dir) to the node\'s QFLOW_RELEASE_DIR (%s)' % (release_dir, CONTRACT))
    link = os.path.join(release_dir, CURRENT)
    if not os.path.islink(link):
        what = 'is not a symlink' if os.path.lexists(link) else 'does not exist'
        raise DeploymentError('%s %s; a release dir has a symlink current -> <version> naming the running release '
                              '(%s)' % (link, what, CONTRACT))
    target = os.readlink(link)
    current = os.path.basename(os.path.normpath(target))
    releases = {}
    try:
        names = sorted(os.listdir(release_dir))
    except OSError as exc:
        raise DeploymentError('cannot list the release dir %s: %s' % (release_dir, exc))
    for name in names:
        path = os.path.join(release_dir, name)
        if not valid_name(name) or os.path.islink(path) or not os.path.isdir(path):
            continue
        release, error = _read_release(path)
        releases[name] = {'version': name, 'path': path, 'release': release, 'error': error}
    history, bad = read_history(os.path.join(release_dir, HISTORY))
    return {'release_dir': release_dir, 'current': current, 'current_target': target,
            'current_release': releases.get(current, {}).get('release'), 'releases': releases,
            'history': history, 'history_errors': bad}


def version_key(name):
    """Sort key: numbers compare as numbers (0.10.0 after 0.9.0)."""
    return [(0, int(part), '') if part.isdigit() else (1, 0, part) for part in re.split(r'(\d+)', name) if part]


def usable(state):
    """Names of the releases that have a readable release.json."""
    return sorted((name for name, rel in state['releases'].items() if rel['release'] is not None), key=version_key)


def describe(state, limit):
    """The read-only summary shared by deployment and deployment_info."""
    history = state['history']
    good = known_good(history, state['releases'])
    others = [v for v in good if v != state['current']]
    return {
        'current': state['current'],
        'release': state['current_release'],
        'history': history[-limit:] if limit else list(history),
        'known_good': good,
        'last_known_good': others[0] if others else None,
    }


def plan(state, action, version, by, now):
    """Decide. Never writes.

    Returns {changed, target, entry (the history line to append, or None), switch (bool), warnings}.
    Raises DeploymentError for a version that cannot be used.
    """
    current = state['current']
    history = state['history']
    warnings = []
    known = usable(state)
    if version is not None and not valid_name(version):
        raise DeploymentError('version %r is not a release name (a directory right under %s); known versions: %s'
                              % (version, state['release_dir'], ', '.join(known) or 'none'))
    if action == 'verified':
        target = current
        if state['current_release'] is None:
            raise DeploymentError('the current release %s has no readable %s (%s); nothing to verify'
                                  % (current, RELEASE_FILE, state['releases'].get(current, {}).get('error')
                                     or 'its directory does not exist'))
        mine = [e for e in history if concerns(e, current)]
        if mine and mine[-1]['action'] == 'verified':
            return {'changed': False, 'target': target, 'entry': None, 'switch': False, 'warnings': warnings}
        entry = {'time': iso(now), 'action': 'verified', 'version': current, 'from': None, 'by': by}
        return {'changed': True, 'target': target, 'entry': entry, 'switch': False, 'warnings': warnings}

    if action == 'rolled_back' and version is None:
        if already_rolled_back(history, current):
            return {'changed': False, 'target': current, 'entry': None, 'switch': False,
                    'warnings': ['the last action was a rollback to %s; pass version to roll back further' % current]}
        good = known_good(history, state['releases'], exclude=current)
        if not good:
            raise DeploymentError('no verified release other than the current one (%s); pass version (known '
                                  'versions: %s)' % (current, ', '.join(known) or 'none'))
        target = good[0]
    else:
        target = version
    if target not in state['releases']:
        raise DeploymentError('unknown version %s: no release dir %s; known versions: %s'
                              % (target, os.path.join(state['release_dir'], target), ', '.join(known) or 'none'))
    if state['releases'][target]['release'] is None:
        raise DeploymentError('release %s cannot be used: %s in %s (every release dir holds a release.json, %s)'
                              % (target, state['releases'][target]['error'], state['releases'][target]['path'], CONTRACT))
    declared = state['releases'][target]['release'].get('version')
    if declared is not None and declared != target:
        warnings.append('%s/%s says version %s; the node will report that' % (target, RELEASE_FILE, declared))
    if target == current:
        return {'changed': False, 'target': target, 'entry': None, 'switch': False, 'warnings': warnings}
    if action == 'rolled_back' and version is not None and target not in known_good(history, state['releases']):
        warnings.append('%s is not known good (its latest history line is not verified)' % target)
    entry = {'time': iso(now), 'action': action, 'version': target, 'from': current, 'by': by}
    return {'changed': True, 'target': target, 'entry': entry, 'switch': True, 'warnings': warnings}


def append_history(path, entry):
    """Append one line (O_APPEND, fsync). Returns the size before, for ``truncate_history``."""
    line = (json.dumps(entry, sort_keys=False, separators=(', ', ': ')) + '\n').encode('utf-8')
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            # a last line without its newline must not swallow ours
            with open(path, 'rb') as handle:
                handle.seek(size - 1)
                if handle.read(1) != b'\n':
                    line = b'\n' + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return size


def truncate_history(path, size):
    with open(path, 'r+b') as handle:
        handle.truncate(size)
        handle.flush()
        os.fsync(handle.fileno())


def switch(release_dir, version):
    """Point ``current`` at ``version`` atomically: a temp symlink in the same dir renamed over ``current``."""
    tmp = os.path.join(release_dir, '.%s.tmp-%s' % (CURRENT, uuid.uuid4().hex[:12]))
    os.symlink(version, tmp)
    try:
        os.replace(tmp, os.path.join(release_dir, CURRENT))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(release_dir)


def apply(state, decision):
    """Write the history line, then switch ``current`` (node contract order). A failed switch takes the line back."""
    path = os.path.join(state['release_dir'], HISTORY)
    try:
        size = append_history(path, decision['entry'])
    except (IOError, OSError) as exc:
        raise DeploymentError('cannot append to %s: %s; nothing was changed (run with become: true when the release '
                              'dir belongs to another user)' % (path, exc))
    if not decision['switch']:
        return
    try:
        switch(state['release_dir'], decision['target'])
    except (IOError, OSError) as exc:
        try:
            truncate_history(path, size)
        except (IOError, OSError):
            pass
        raise DeploymentError('cannot repoint %s to %s: %s; current was not changed'
                              % (os.path.join(state['release_dir'], CURRENT), decision['target'], exc))
