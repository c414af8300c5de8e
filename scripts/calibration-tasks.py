#!/usr/bin/env python3
"""Writes a calibration task set (TSV) from a repository's real commits.

Usage: calibration-tasks.py GIT_DIR [--count N] [--every K] [--rev REV] > tasks.tsv

Every K-th non-merge, non-revert commit reachable from REV (newest first, `git rev-list
--no-merges`), up to N of them, becomes a task: its subject is the title, its body the
description, its parent the base. None is picked by hand. The band is what the commit actually
changed (see LABEL RULE below and tests/fixtures/calibration/README.md). Output columns: band,
base commit, title, description (\\n, \\t and \\\\ escaped), then the commit and the figures the
band came from (ignored by `polyphony route --calibrate`).
"""
import argparse
import subprocess
import sys

SOURCE_EXT = (".c", ".h", ".cc", ".cpp", ".hpp", ".cxx", ".py", ".go", ".rs", ".js", ".ts", ".java",
              ".rb", ".sh", ".pl", ".cs", ".m", ".swift", ".kt", ".lua", ".php")


# LABEL RULE: source lines = lines added + deleted in source files (by extension, tests
# included); source files = how many of them changed; areas = distinct top-level directories
# (the root counts as one) among them.
#   low:  no source file changed (docs, build, CI only), or <= 10 source lines in one file
#   high: >= 300 source lines, or >= 8 source files, or >= 4 areas
#   mid:  everything else
def band(lines, files, areas):
    if files == 0 or (files == 1 and lines <= 10):
        return "low"
    if lines >= 300 or files >= 8 or areas >= 4:
        return "high"
    return "mid"


def git(git_dir, *args):
    return subprocess.run(["git", "--git-dir", git_dir, *args], check=True, capture_output=True,
                          text=True, errors="replace").stdout


def escape(text):
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("git_dir")
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--rev", default="HEAD")
    a = ap.parse_args()
    commits = git(a.git_dir, "rev-list", "--no-merges", a.rev).split()
    out = 0
    for c in commits[::max(1, a.every)]:
        if out >= a.count:
            break
        parents = git(a.git_dir, "rev-list", "--parents", "-n1", c).split()[1:]
        subject = git(a.git_dir, "log", "-n1", "--format=%s", c).strip()
        body = git(a.git_dir, "log", "-n1", "--format=%b", c).strip()
        if len(parents) != 1 or subject.lower().startswith("revert"):
            continue
        lines = files = 0
        areas = set()
        for row in git(a.git_dir, "show", "--numstat", "--format=", c).splitlines():
            parts = row.split("\t")
            if len(parts) != 3 or not parts[2].endswith(SOURCE_EXT) or parts[0] == "-":
                continue
            lines += int(parts[0]) + int(parts[1])
            files += 1
            areas.add(parts[2].split("/")[0] if "/" in parts[2] else ".")
        b = band(lines, files, len(areas))
        print("\t".join([b, parents[0], escape(subject), escape(body), c,
                         f"{lines} source lines, {files} source files, {len(areas)} areas"]))
        out += 1


if __name__ == "__main__":
    sys.exit(main())
