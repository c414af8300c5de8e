#!/usr/bin/env bash
# Fails, naming each file, when a tracked C++ file is not as clang-format leaves it or has a
# line over 120 characters. Usage: check_format.sh SOURCE_DIR
set -euo pipefail
cd "${1:?usage: check_format.sh SOURCE_DIR}"
format=$(command -v clang-format || command -v clang-format-14 || true)
[[ -n $format ]] || { echo "check_format: clang-format is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
mapfile -t files < <(git ls-files -- '*.cpp' '*.h')
((${#files[@]} > 0)) || { echo "check_format: no C++ files tracked under $(pwd)" >&2; exit 1; }
status=0
"$format" --dry-run -Werror "${files[@]}" || status=1
awk 'length > 120 { print FILENAME ":" FNR ": " length " characters"; bad = 1 } END { exit bad }' "${files[@]}" ||
  status=1
((status == 0)) && echo "check_format: ${#files[@]} files formatted, no line over 120 characters"
exit $status
