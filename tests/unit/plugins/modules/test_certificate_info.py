# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.certificate_info on certificates generated in tmp_path."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import os

import pytest

from qflow_module_runner import run_module

from ansible_collections.qflow.ops.plugins.modules import certificate_info

cryptography = pytest.importorskip('cryptography')
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def make_cert(path, days, cn='qflow-node-1', issuer_key=None, issuer_cn=None):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn or cn)])
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(123456789)
            .not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(issuer_key or key, hashes.SHA256()))
    with open(path, 'wb') as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_expiring_in_10_days(tmp_path):
    path = make_cert(str(tmp_path / 'soon.crt'), 10)
    before = open(path, 'rb').read()
    res, failed = run_module(certificate_info, {'path': path}, check_mode=True)
    assert not failed and res['changed'] is False, res
    assert 9.9 < res['days_left'] <= 10 and res['expiring'] is True and res['expired'] is False
    assert res['subject'] == res['issuer'] == 'CN=qflow-node-1' and res['serial'] == 123456789
    assert res['self_signed'] is True and res['dns_names'] == ['qflow-node-1']
    assert res['not_after'].endswith('Z') and res['fingerprint'].startswith('sha256:')
    assert 'days left' in res['msg'] and 'expiring within 30d' in res['msg']
    assert open(path, 'rb').read() == before and os.listdir(str(tmp_path)) == ['soon.crt']
    res, failed = run_module(certificate_info, {'path': path, 'expiring_within': '7d'})
    assert not failed and res['expiring'] is False


def test_valid_for_200_days(tmp_path):
    path = make_cert(str(tmp_path / 'long.crt'), 200)
    res, failed = run_module(certificate_info, {'path': path})
    assert not failed and 199.9 < res['days_left'] <= 200 and res['expiring'] is False, res
    res, failed = run_module(certificate_info, {'path': path, 'expiring_within': '201d'})
    assert not failed and res['expiring'] is True


def test_expired_and_not_self_signed(tmp_path):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    path = make_cert(str(tmp_path / 'old.crt'), -2, issuer_key=ca_key, issuer_cn='Qflow CA')
    res, failed = run_module(certificate_info, {'path': path})
    assert not failed and res['expired'] is True and res['expiring'] is True and res['days_left'] < -1.9
    assert res['self_signed'] is False and res['issuer'] == 'CN=Qflow CA' and 'EXPIRED' in res['msg']


def test_same_name_but_other_key_is_not_self_signed(tmp_path):
    path = make_cert(str(tmp_path / 'x.crt'), 50, issuer_key=ec.generate_private_key(ec.SECP256R1()))
    res, failed = run_module(certificate_info, {'path': path})
    assert not failed and res['self_signed'] is False


@pytest.mark.parametrize('content, words', [
    (b'this is not a certificate\n', 'not a PEM certificate'),
    (b'-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n', 'does not hold a valid PEM certificate'),
])
def test_garbage_file(tmp_path, content, words):
    path = tmp_path / 'bad.crt'
    path.write_bytes(content)
    res, failed = run_module(certificate_info, {'path': str(path)})
    assert failed and words in res['msg'] and str(path) in res['msg'], res


def test_missing_file(tmp_path):
    path = str(tmp_path / 'missing.crt')
    res, failed = run_module(certificate_info, {'path': path})
    assert failed and 'cannot read certificate' in res['msg'] and path in res['msg']


def test_bad_duration(tmp_path):
    path = make_cert(str(tmp_path / 'c.crt'), 10)
    res, failed = run_module(certificate_info, {'path': path, 'expiring_within': 'a month'})
    assert failed and res['msg'].startswith('expiring_within:')
