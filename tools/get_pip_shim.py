"""Stand-in for ansible-test's cached get-pip script: install pip from CPython's bundled wheel.

ansible-test downloads get-pip from a host that this project's machines cannot reach; it looks for a
cached copy first. This shim installs the pip version ansible-test asks for (from PyPI) using the pip
wheel that ships with CPython's ensurepip.
"""
import ensurepip
import glob
import os
import sys

wheel = sorted(glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl")))[-1]
sys.path.insert(0, wheel)
from pip._internal.cli.main import main as pip_main  # noqa: E402  pylint: disable=wrong-import-position

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(pip_main(["install", "--upgrade", "--force-reinstall"] + args))
