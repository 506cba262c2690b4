"""Stand-in for the get-pip bootstrap script ansible-test downloads from ci-files.testing.ansible.com.

ansible-test creates one virtualenv per sanity test and bootstraps pip into it with that script, which
cannot be fetched here (only the package registries are reachable). This one does the same from what
Python ships: ensurepip installs the bundled pip, which then installs what ansible-test asked for
(``pip==<version>`` and, unless told otherwise, setuptools and wheel) from the configured package index.
`make sanity` copies it to ~/.ansible/test/cache/get_pip_<version>.py when that file is missing.
"""

import configparser
import ensurepip
import os
import subprocess
import sys

# ansible-test runs pip with a reduced environment (no PIP_* variables): the machine's pip settings (a
# certificate bundle, local wheel directories, an index) are written into the new virtualenv's own
# pip.conf, which every later pip of that virtualenv reads.
PIP_CONFIGS = ("/etc/xdg/pip/pip.conf", "/etc/pip.conf", os.path.expanduser("~/.pip/pip.conf"),
               os.path.expanduser("~/.config/pip/pip.conf"))
PIP_ENV = {"PIP_CERT": "cert", "PIP_FIND_LINKS": "find-links", "PIP_INDEX_URL": "index-url",
           "PIP_EXTRA_INDEX_URL": "extra-index-url", "PIP_DEFAULT_TIMEOUT": "timeout"}


def carry_pip_settings():
    merged = configparser.ConfigParser()
    merged.read([path for path in PIP_CONFIGS if os.path.exists(path)])
    if not merged.has_section("global"):
        merged.add_section("global")
    for var, key in PIP_ENV.items():
        if os.environ.get(var):
            merged.set("global", key, os.environ[var])
    with open(os.path.join(sys.prefix, "pip.conf"), "w") as handle:
        merged.write(handle)


def main():
    args = sys.argv[1:]
    options = [a for a in args if a.startswith("-") and a not in ("--no-setuptools", "--no-wheel")]
    packages = [a for a in args if not a.startswith("-")]
    if "--no-setuptools" not in args:
        packages.append("setuptools")
    if "--no-wheel" not in args:
        packages.append("wheel")
    carry_pip_settings()
    ensurepip.bootstrap(upgrade=True)
    # ensurepip sets PIP_CONFIG_FILE=/dev/null in this process's environment: not for the pip it installed
    env = dict(os.environ)
    env.pop("PIP_CONFIG_FILE", None)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check"] + options + packages,
                          env=env)


if __name__ == "__main__":
    main()
