"""Copy the UI's third-party browser files out of their npm tarballs, as pinned in
graphql_api/ui/vendor.lock.json (package, version, tarball integrity, and each file's sha384).

    python scripts/ui_vendor.py            # fetch with `npm pack`, verify, write the files
    python scripts/ui_vendor.py --check    # fetch and verify; fail if a committed file differs
    python scripts/ui_vendor.py --update   # (after editing a version) record new hashes

Only npm's own client talks to the registry; nothing is built, so serving the UI needs no
Node.js: the files are committed inside the package. A file is the tarball's bytes, unchanged.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "graphql_api" / "ui" / "vendor.lock.json"


def sri(data: bytes, algorithm: str = "sha384") -> str:
    """A Subresource Integrity string, as browsers check it and npm records tarballs."""
    return f"{algorithm}-" + base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def folder(package: dict[str, Any]) -> Path:
    return ROOT / package["dest"] / f"{package['name']}@{package['version']}"


def fetch(package: dict[str, Any], workdir: Path) -> dict[str, bytes]:
    """The listed files of one package's tarball, after checking the tarball's integrity."""
    spec = f"{package['name']}@{package['version']}"
    out = subprocess.run(
        ["npm", "pack", spec, "--json", "--pack-destination", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
    )
    (packed,) = json.loads(out.stdout)
    tarball = (workdir / packed["filename"]).read_bytes()
    integrity = sri(tarball, "sha512")
    if package.get("integrity", integrity) != integrity:
        raise SystemExit(f"{spec}: tarball integrity {integrity} differs from the lockfile")
    package["integrity"] = integrity
    files: dict[str, bytes] = {}
    with tarfile.open(workdir / packed["filename"]) as archive:
        for name in package["files"]:
            member = archive.extractfile(f"package/{name}")
            if member is None:
                raise SystemExit(f"{spec}: {name} is not a file in the tarball")
            files[name] = member.read()
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail if a committed file differs")
    mode.add_argument("--update", action="store_true", help="record new hashes in the lockfile")
    args = parser.parse_args()
    lock = json.loads(LOCK.read_text())
    differences: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for package in lock["packages"]:
            files = fetch(package, Path(tmp))
            recorded = package["files"] if isinstance(package["files"], dict) else {}
            hashes = {}
            for name, data in files.items():
                hashes[name] = sri(data)
                if not args.update and recorded.get(name) != hashes[name]:
                    differences.append(
                        f"{package['name']}@{package['version']}/{name}: "
                        f"lockfile {recorded.get(name)}, tarball {hashes[name]}"
                    )
                target = folder(package) / name
                if args.check:
                    if not target.is_file() or target.read_bytes() != data:
                        differences.append(f"{target.relative_to(ROOT)} differs from the tarball")
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
            package["files"] = hashes
    if args.update:
        LOCK.write_text(json.dumps(lock, indent=2) + "\n")
    for difference in differences:
        print(difference, file=sys.stderr)
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
