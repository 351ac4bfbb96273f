#!/usr/bin/env bash
# quarry-speedups (a workspace member) is a C extension built from Cython at `uv sync`: it needs a C compiler and
# the Python headers. Keep one that is there; otherwise install Debian's gcc as root (the way a user would);
# otherwise say what to do.
set -u
have_compiler() {
  for c in "${CC:-}" cc gcc clang; do
    [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && return 0
  done
  return 1
}
if have_compiler; then echo "compiler: found"; exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "compiler: none found; installing Debian's gcc (quarry-speedups is built from source)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq gcc libc6-dev >/dev/null
  if have_compiler; then echo "compiler: installed gcc"; exit 0; fi
fi
cat >&2 <<'MSG'
compiler: no C compiler found, and none could be installed automatically.
  quarry-speedups (the compiled frame decoder) is built from source by `uv sync`. Install one and re-run:
      sudo apt-get install gcc        (Debian/Ubuntu)      or: export CC=/path/to/cc
MSG
exit 1
