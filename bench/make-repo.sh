#!/usr/bin/env bash
# Makes (once) a bare repository of FILES files and COMMITS commits on `main`, for the
# provisioning benchmark, and prints its path. Cached: a second call with the same sizes
# returns the existing repository at once.
#
# Usage: bench/make-repo.sh FILES COMMITS CACHE_DIR
# The first commit adds every file (200 files a directory, 100 B to 6 KB of text each); every
# later commit appends one line to one file, so history is long and the tree stays the same
# size. Made with `git fast-import` from an awk stream, then repacked: a few minutes at most.
set -euo pipefail

readonly FILES=${1:?usage: make-repo.sh FILES COMMITS CACHE_DIR}
readonly COMMITS=${2:?usage: make-repo.sh FILES COMMITS CACHE_DIR}
readonly CACHE_DIR=${3:?usage: make-repo.sh FILES COMMITS CACHE_DIR}
readonly VERSION=1  # bump when the generated content changes
readonly REPO="$CACHE_DIR/repo-f${FILES}-c${COMMITS}-v${VERSION}.git"

log() { echo "make-repo: $*" >&2; }

if [[ -f "$REPO/polyphony-bench-complete" ]]; then
  echo "$REPO"
  exit 0
fi
mkdir -p "$CACHE_DIR"
partial="$REPO.partial.$$"
trap 'rm -rf "$partial"' EXIT
log "generating $FILES files and $COMMITS commits in $REPO (cached for later runs)"
git init -q --bare -b main "$partial"

# The fast-import stream: commit 1 adds every file; commit c > 1 appends a line to one file.
# `data N` needs the exact byte count: the content is ASCII, so awk's length() is bytes.
{
awk -v files="$FILES" -v commits="$COMMITS" '
  function path(i) { return sprintf("src/d%03d/f%05d.txt", int(i / 200), i) }
  function body(i,    n, k, s) {
    n = 3 + (i * 37) % 200
    s = ""
    for (k = 0; k < n; k++) s = s sprintf("file %d line %d: the quick brown fox\n", i, k)
    return s
  }
  function commit_header(c, msg) {
    printf "commit refs/heads/main\n"
    printf "author Bench <bench@localhost> %d +0000\n", 1600000000 + c * 60
    printf "committer Bench <bench@localhost> %d +0000\n", 1600000000 + c * 60
    printf "data %d\n%s\n", length(msg), msg
  }
  function put(p, s) { printf "M 100644 inline %s\ndata %d\n%s\n", p, length(s), s }
  BEGIN {
    commit_header(1, "Initial import of " files " files")
    for (i = 0; i < files; i++) { content[i] = body(i); put(path(i), content[i]) }
    for (c = 2; c <= commits; c++) {
      i = (c * 7919) % files
      content[i] = content[i] sprintf("change %d\n", c)
      commit_header(c, "Change " c ": touch " path(i))
      put(path(i), content[i])
    }
  }
'
echo done
} | git -C "$partial" fast-import --quiet --done
log "repacking"
git -C "$partial" repack -adq
git -C "$partial" count-objects -vH >&2
touch "$partial/polyphony-bench-complete"
rm -rf "$REPO"
mv "$partial" "$REPO"
trap - EXIT
echo "$REPO"
