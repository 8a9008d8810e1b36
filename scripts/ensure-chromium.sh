#!/bin/sh
# Installs Debian's chromium when it is missing: the realtime browser test
# (test/realtime/browser.test.ts) drives a headless /usr/bin/chromium and fails without it.
set -eu
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=''
if [ "$(id -u)" != 0 ]; then
  SUDO='sudo'
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --version
