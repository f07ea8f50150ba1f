"""The storage layer: Git objects, packs, refs, trees and the repository's config on disk (and
their in-memory twins). dulwich is imported here and in the remote transports, nowhere else.

* :mod:`~gitstore.backend.objects`: the object database (``ObjectBackend``: ``DiskObjects``,
  ``MemoryObjects``), big blobs streamed both ways;
* :mod:`~gitstore.backend.packs`: a put's small objects as one pack; small packs merged;
* :mod:`~gitstore.backend.refs`: task refs read, listed and moved by compare-and-swap
  (``RefBackend``: ``DiskRefs``, ``MemoryRefs``);
* :mod:`~gitstore.backend.trees`: a version's trees and commit written, and objects read back as
  plain values;
* :mod:`~gitstore.backend.repo`: the repository found at a path, or created there;
* :mod:`~gitstore.backend.config`: its git config read into settings, and updated under git's
  ``config.lock``.
"""
