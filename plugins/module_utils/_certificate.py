# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: read an X.509 certificate's status. May change without notice."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import traceback

from ansible_collections.qflow.ops.plugins.module_utils._time import iso

CRYPTOGRAPHY_IMPORT_ERROR = None
try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - depends on the target
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()


class CertificateError(Exception):
    pass


def _utc(cert, name):
    value = getattr(cert, name + '_utc', None)  # cryptography >= 42
    if value is None:
        value = getattr(cert, name).replace(tzinfo=datetime.timezone.utc)
    return value


def _self_signed(cert):
    if cert.issuer != cert.subject:
        return False
    verify = getattr(cert, 'verify_directly_issued_by', None)  # cryptography >= 40
    if verify is None:
        return True
    try:
        verify(cert)
    except Exception:  # signature, unsupported key type: not provably self-signed
        return False
    return True


def load(path):
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        raise CertificateError('cannot read certificate %s: %s' % (path, exc))
    if b'-----BEGIN CERTIFICATE-----' not in data:
        raise CertificateError('%s is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" line)' % path)
    try:
        return x509.load_pem_x509_certificate(data)
    except Exception as exc:
        raise CertificateError('%s does not hold a valid PEM certificate: %s' % (path, exc))


def status(path, expiring_within, now):
    """Status of the first certificate in a PEM file; expiring_within in seconds."""
    cert = load(path)
    not_after = _utc(cert, 'not_valid_after')
    not_before = _utc(cert, 'not_valid_before')
    days_left = (not_after - now).total_seconds() / 86400.0
    try:
        sans = [str(v) for v in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        sans = []
    except Exception:  # malformed extension: status is still useful
        sans = []
    return {
        'path': path,
        'not_before': iso(not_before),
        'not_after': iso(not_after),
        'days_left': round(days_left, 3),
        'expired': now >= not_after,
        'expiring': (not_after - now).total_seconds() <= expiring_within,
        'subject': cert.subject.rfc4514_string(),
        'issuer': cert.issuer.rfc4514_string(),
        'serial': cert.serial_number,
        'self_signed': _self_signed(cert),
        'dns_names': sans,
        'fingerprint': 'sha256:' + cert.fingerprint(hashes.SHA256()).hex(),
    }
