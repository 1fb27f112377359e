"""Offline stand-in for the get-pip.py that ansible-test downloads.

ansible-test bootstraps pip in its sanity venvs with a script fetched from
ci-files.testing.ansible.com, which this network cannot reach. This one does the
same job with the standard library's ensurepip and the configured package index.
"""
import subprocess
import sys

GET_PIP_ONLY_FLAGS = {"--no-setuptools", "--no-wheel"}

pip_arguments = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_FLAGS]
# In a child process: ensurepip points PIP_CONFIG_FILE at /dev/null in its own
# process, which would hide the host's pip configuration from the install below.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *pip_arguments])
