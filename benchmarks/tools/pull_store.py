"""Pull every task of SOURCE into a new empty store DEST (a child process measured for peak RSS).

    pull_store.py SOURCE DEST

Prints the transfer summary as JSON on stdout, with this process's own peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys

from gitstore import Store
from gitstore import remote as R


def main() -> None:
    source, dest = sys.argv[1], sys.argv[2]
    with Store.open(dest, create=True) as store:
        result = R.pull(store, source)
    out = result.to_dict()
    # This process alone; /usr/bin/time also counts the git helpers serving the local remote.
    out["self_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
    print(json.dumps(out))


if __name__ == "__main__":
    main()
