#!/usr/bin/env bash
# A simulated agent run on a fresh store: three tasks each leave a diff, a log and test results;
# a second run retries one task; then we look at the store with gitstore and with stock git.
# Uses the `gitstore` on PATH (see the README's first command).
set -euo pipefail

work=$(mktemp -d "${TMPDIR:-/tmp}/gitstore-demo.XXXXXX")
export GITSTORE_DIR="$work/store.git"
step() { printf '\n== %s\n' "$*"; }

echo "store: $GITSTORE_DIR"

step "run-001: an agent works on spec fix-login, tasks t1..t3"
for task in t1 t2 t3; do
    out="$work/run-001/$task"
    mkdir -p "$out"
    cat >"$out/diff.diff" <<EOF
--- a/app/login.py
+++ b/app/login.py
@@ -10,2 +10,2 @@ def login(user, password):
-    if user.password == password:
+    if hmac.compare_digest(user.password_hash, hash_password(password)):
         return session_for(user)
EOF
    printf '[%s] checkout ok\n[%s] applied patch\n[%s] ran pytest\n' "$task" "$task" "$task" >"$out/log.log"
    failed=0
    [ "$task" = t2 ] && failed=1
    printf '{"task": "%s", "passed": %d, "failed": %d}\n' "$task" $((12 - failed)) "$failed" >"$out/test.json"
    gitstore put "fix-login/$task" "$out/diff.diff" "$out/log.log" "$out/test.json" \
        --run run-001 -m "first attempt at $task"
done

step "run-002: the agent retries t2: a second version of fix-login/t2"
out="$work/run-002/t2"
mkdir -p "$out"
sed 's/hash_password(password)/hash_password(password, user.salt)/' \
    "$work/run-001/t2/diff.diff" >"$out/diff.diff"
printf '[t2] retried with the salt\n[t2] all tests pass\n' >"$out/log.log"
printf '{"task": "t2", "passed": 12, "failed": 0}\n' >"$out/test.json"
gitstore put fix-login/t2 "$out/diff.diff" "$out/log.log" "$out/test.json" \
    --run run-002 -m "retry with salt"

step "a note from stdin (- needs --as NAME)"
echo "t2 needed the per-user salt" | gitstore put fix-login/t1 - --as notes.md --run run-002

step "gitstore ls                      (specs)"
gitstore ls

step "gitstore ls fix-login            (tasks and their latest commit)"
gitstore ls fix-login

step "gitstore ls fix-login/t2         (artifacts of the latest version)"
gitstore ls fix-login/t2

step "gitstore log fix-login/t2        (versions, newest first)"
gitstore log fix-login/t2

step "gitstore diff fix-login/t2@v1 --patch   (what changed since v1, line by line)"
gitstore diff fix-login/t2@v1 --patch

step "gitstore log                     (the newest versions across the store)"
gitstore log

step "gitstore get fix-login/t2@v1 test.json   vs   the latest"
gitstore get fix-login/t2@v1 test.json
gitstore get fix-login/t2 test.json

step "gitstore show fix-login/t2 log.log --json   (one artifact, with its pinned URI)"
gitstore show fix-login/t2 log.log --json

step "gitstore verify                  (recompute every sha256)"
gitstore verify

step "stock git sees the same store: git --git-dir=\$GITSTORE_DIR for-each-ref refs/artifacts"
git --git-dir="$GITSTORE_DIR" for-each-ref refs/artifacts

step "git --git-dir=\$GITSTORE_DIR log --oneline refs/artifacts/fix-login/t2"
git --git-dir="$GITSTORE_DIR" log --oneline refs/artifacts/fix-login/t2

step "git --git-dir=\$GITSTORE_DIR log -1 refs/artifacts/fix-login/t2   (the trailers)"
git --git-dir="$GITSTORE_DIR" log -1 refs/artifacts/fix-login/t2

echo
echo "store: $GITSTORE_DIR  (try: GITSTORE_DIR=$GITSTORE_DIR gitstore ls fix-login/t1)"
