"""Package list for the folder -> import-name mapping in pyproject.toml.

`plugins/` installs as `zoo_plugins` and `cli/` as `zoo_cli`; every sub-folder with an
`__init__.py` becomes a sub-package, so a new built-in plugin needs no edit here.
"""
from setuptools import find_packages, setup

PACKAGE_DIRS = {"zoo": "zoo", "zoo_plugins": "plugins", "zoo_cli": "cli"}

packages = []
for name, folder in PACKAGE_DIRS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages)
