#!/usr/bin/env bash
# apt-ensure.sh NAME PACKAGE CHECK...: runs CHECK (a command); when it fails, installs Debian's
# PACKAGE (apt-get, as root or with sudo) and runs CHECK again. Says what is missing and exits 1
# when it cannot install, so the tests that need PACKAGE fail clearly instead of skipping.
# The scripts/ensure-*.sh files call it with their own check.
set -euo pipefail
name="$1"; package="$2"; shift 2

if "$@" >/dev/null 2>&1; then exit 0; fi

if command -v apt-get >/dev/null 2>&1; then
  SUDO=''
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO='sudo'; else
      echo "$name: $package is missing and installing it needs root (apt-get install $package)" >&2
      exit 1
    fi
  fi
  echo "$name: installing $package (Debian package)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$package" >/dev/null
  if "$@" >/dev/null 2>&1; then exit 0; fi
fi

echo "$name: $package not found; install it (e.g. apt-get install $package)" >&2
exit 1
