#!/bin/sh
# Peer: one task put with stock git plumbing, the way a shell script would do it.
#   git_put.sh GIT_DIR REF FILE...
# Each FILE becomes a blob (hash-object -w, one call per file), the blobs a tree (mktree), the
# tree a commit whose parent is the ref's current value (commit-tree -p), and the ref moves by
# compare-and-swap against that parent (update-ref REF NEW OLD).
set -eu
export GIT_DIR="$1"
ref="$2"
shift 2
tree=$(
    for f in "$@"; do
        printf '100644 blob %s\t%s\n' "$(git hash-object -w "$f")" "$(basename "$f")"
    done | git mktree
)
if parent=$(git rev-parse -q --verify "$ref"); then
    commit=$(git commit-tree "$tree" -p "$parent" -m put)
    git update-ref "$ref" "$commit" "$parent"
else
    commit=$(git commit-tree "$tree" -m put)
    git update-ref "$ref" "$commit" ""
fi
