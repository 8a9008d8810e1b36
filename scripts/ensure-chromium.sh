#!/usr/bin/env bash
# Debian's chromium for the realtime browser test (test/realtime/browser.test.ts), which drives
# a headless /usr/bin/chromium and fails without it.
exec bash "$(dirname "$0")/apt-ensure.sh" ensure-chromium chromium test -x /usr/bin/chromium
