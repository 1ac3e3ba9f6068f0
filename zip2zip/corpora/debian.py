"""Fetch files of a Debian package without installing it: the sources of the project's corpora.

The corpora (:mod:`zip2zip.corpora`) come from Debian packages so that every machine with the package registries
rebuilds them bit for bit. A package already installed is read in place; otherwise ``apt-get download`` fetches
its .deb (no root needed; after one ``apt-get update`` when the package lists are empty and we are root) and
``dpkg-deb`` unpacks the one folder we need into a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

__all__ = ["CorpusUnavailableError", "apt_download", "debian_tree", "extract_deb"]


class CorpusUnavailableError(RuntimeError):
    """Raised when a domain's source is missing and cannot be installed here; the message says how."""


def debian_tree(package: str, subdir: str, install: bool, workdir: Path) -> Path:
    """Return a folder holding ``/<subdir>`` of a Debian package: the installed copy, or a fresh unpack."""
    installed = Path("/") / subdir
    if installed.is_dir() and any(installed.iterdir()):
        return installed
    how = (
        f"Install it with `apt-get install {package}` (Debian or Ubuntu), or on a machine with apt let "
        "zip2zip fetch it (ensure_sources(domain, install=True))."
    )
    if not install:
        raise CorpusUnavailableError(f"The Debian package {package!r} is not installed. {how}")
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise CorpusUnavailableError(
            f"The Debian package {package!r} is needed, but apt-get/dpkg-deb are not available here. {how}"
        )
    deb = apt_download(package, workdir, how)
    unpacked = workdir / "root"
    extract_deb(deb, subdir, unpacked)
    tree = unpacked / subdir
    if not tree.is_dir():
        raise CorpusUnavailableError(f"{deb.name} holds no /{subdir}; the package layout changed. {how}")
    return tree


def apt_download(package: str, workdir: Path, how: str) -> Path:
    """``apt-get download`` the package's .deb into ``workdir`` (refreshing empty package lists once)."""

    def attempt() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["apt-get", "download", "-q", package],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    print(f"zip2zip.corpora: fetching the Debian package {package} with apt-get download", file=sys.stderr)
    result = attempt()
    if result.returncode != 0 and hasattr(os, "geteuid") and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=900, check=False)
        result = attempt()
    debs = sorted(workdir.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CorpusUnavailableError(
            f"`apt-get download {package}` failed ({detail[0]}). Run `apt-get update` first if the package "
            f"lists are empty. {how}"
        )
    return debs[-1]


def extract_deb(deb: Path, subdir: str, dest: Path) -> None:
    """Unpack the files under ``subdir`` of a .deb (``dpkg-deb --fsys-tarfile`` piped into tarfile)."""
    dest.mkdir(parents=True, exist_ok=True)
    prefix = f"./{subdir}/"
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
            for member in archive:
                if member.isfile() and member.name.startswith(prefix) and ".." not in member.name:
                    target = dest / member.name[2:]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = archive.extractfile(member)
                    assert source is not None
                    with open(target, "wb") as out:
                        shutil.copyfileobj(source, out)
    if proc.returncode != 0:
        raise CorpusUnavailableError(
            f"`dpkg-deb --fsys-tarfile {deb}` failed with exit code {proc.returncode}"
        )
