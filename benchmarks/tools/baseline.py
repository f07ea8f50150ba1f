"""Child process for peak-RSS figures: import gitstore and open a store, nothing else.

Its peak RSS is the interpreter's floor, to read the other children's figures against.
"""

from __future__ import annotations

import sys

from gitstore import Store

Store.open(sys.argv[1], create=True).close()
