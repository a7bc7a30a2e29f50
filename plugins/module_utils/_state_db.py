# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: inspect and optimise the node's SQLite state database. May change without notice."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import sqlite3

STATE_DB = 'state.db'


class StateDbError(Exception):
    pass


def db_path(data_dir, name=STATE_DB):
    path = os.path.join(data_dir, name)
    if not os.path.isfile(path):
        raise StateDbError('state database %s does not exist; check data_dir (inventory variable qflow_data_dir)' % path)
    return path


def _connect(path, read_only, timeout):
    try:
        if read_only:
            return sqlite3.connect('file:%s?mode=ro' % path, uri=True, timeout=timeout)
        return sqlite3.connect(path, timeout=timeout)
    except sqlite3.Error as exc:
        raise StateDbError('cannot open %s: %s' % (path, exc))


def stats(path, timeout=30):
    """{pages, free_pages, page_size, size_bytes, free_ratio, wal_bytes, integrity} without writing anything."""
    conn = _connect(path, True, timeout)
    try:
        pages = conn.execute('PRAGMA page_count').fetchone()[0]
        free = conn.execute('PRAGMA freelist_count').fetchone()[0]
        size = conn.execute('PRAGMA page_size').fetchone()[0]
        integrity = [row[0] for row in conn.execute('PRAGMA quick_check').fetchall()]
    except sqlite3.Error as exc:
        raise StateDbError('cannot read %s: %s (is it a Qflow state database?)' % (path, exc))
    finally:
        conn.close()
    wal = path + '-wal'
    return {
        'pages': pages, 'free_pages': free, 'page_size': size, 'size_bytes': pages * size,
        'free_ratio': round(float(free) / pages, 4) if pages else 0.0,
        'wal_bytes': os.path.getsize(wal) if os.path.exists(wal) else 0,
        'integrity': 'ok' if integrity == ['ok'] else '; '.join(integrity[:5]),
    }


def optimise(path, timeout=30):
    """VACUUM, then PRAGMA optimize and a WAL checkpoint. The node may keep running: SQLite locks for the copy."""
    conn = _connect(path, False, timeout)
    try:
        conn.isolation_level = None
        conn.execute('VACUUM')
        conn.execute('PRAGMA optimize')
        conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    except sqlite3.Error as exc:
        raise StateDbError('optimising %s failed: %s. The database is unchanged (VACUUM is atomic); if it is busy, '
                           'retry in a quieter moment or raise timeout' % (path, exc))
    finally:
        conn.close()
