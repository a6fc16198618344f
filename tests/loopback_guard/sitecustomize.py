"""Started by Python in every process the tests launch (tests/conftest.py puts this folder on PYTHONPATH)."""

import os

if os.environ.get("CADENZA_TEST_SOCKET_LOG"):
    from loopback_guard import install

    install()
