#!/usr/bin/env bash
# Installs the Debian packages libfiber needs to build, if any is missing. Run by scripts/demo and scripts/test;
# extra package names may be passed as arguments (scripts/test passes libcmocka-dev, needed for the tests only).
set -euo pipefail
need=(build-essential cmake pkg-config libjemalloc-dev liburing-dev binutils "$@")
missing=()
for p in "${need[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	SUDO=
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
