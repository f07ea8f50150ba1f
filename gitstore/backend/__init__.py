"""The storage layer: Git objects, packs, refs and trees on disk (and
their in-memory twins). dulwich is imported here and in the remote transports, nowhere else.

* :mod:`~gitstore.backend.objects`: the object database (``ObjectBackend``: ``DiskObjects``,
  ``MemoryObjects``), big blobs streamed both ways;
* :mod:`~gitstore.backend.packs`: a put's small objects as one pack; small packs merged;
* :mod:`~gitstore.backend.refs`: task refs read, listed and moved by compare-and-swap
  (``RefBackend``: ``DiskRefs``, ``MemoryRefs``);
* :mod:`~gitstore.backend.trees`: a version's trees and commit written, and objects read back as
  plain values.
"""
