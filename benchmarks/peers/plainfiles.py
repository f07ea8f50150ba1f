"""Peer: a plain-files artifact store, like the ad-hoc ones gitstore replaces.

Layout: ``ROOT/SPEC/TASK/`` holds the latest files and ``metadata.json`` (name -> sha256, size,
version); ``ROOT/SPEC/TASK/versions/N/`` holds a copy of the files and metadata of version N.
No locking and no fsync, as such stores usually have neither.

Used in-process by the benchmarks (``put``); also a script:
``plainfiles.py ROOT SPEC/TASK FILE...``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping


def put(root: str, address: str, files: Mapping[str, bytes]) -> int:
    """Store ``files`` as the next version of ``address``; return its number."""
    task_dir = os.path.join(root, *address.split("/"))
    meta_path = os.path.join(task_dir, "metadata.json")
    try:
        with open(meta_path) as f:
            version = json.load(f)["version"] + 1
    except FileNotFoundError:
        version = 1
    vdir = os.path.join(task_dir, "versions", str(version))
    os.makedirs(vdir, exist_ok=True)
    meta: dict[str, object] = {"version": version, "artifacts": {}}
    artifacts: dict[str, object] = {}
    for name, data in files.items():
        for d in (task_dir, vdir):
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        artifacts[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    meta["artifacts"] = artifacts
    text = json.dumps(meta, indent=1)
    with open(os.path.join(vdir, "metadata.json"), "w") as f:
        f.write(text)
    tmp = meta_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, meta_path)
    return version


if __name__ == "__main__":
    root, address, *paths = sys.argv[1:]
    contents = {}
    for p in paths:
        with open(p, "rb") as fh:
            contents[os.path.basename(p)] = fh.read()
    print(put(root, address, contents))
