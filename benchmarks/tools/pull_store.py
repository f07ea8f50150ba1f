"""Pull every task of SOURCE into a new empty store DEST (a child process measured for peak RSS).

    pull_store.py SOURCE DEST

Prints the transfer summary as JSON on stdout.
"""

from __future__ import annotations

import json
import sys

from gitstore import Store
from gitstore import remote as R


def main() -> None:
    source, dest = sys.argv[1], sys.argv[2]
    with Store.open(dest, create=True) as store:
        result = R.pull(store, source)
    print(json.dumps(result.to_dict()))


if __name__ == "__main__":
    main()
