#!/usr/bin/env bash
# Installs the Debian packages libfiber needs to build and test, if any is missing. Sourced by scripts/demo and
# scripts/test; extra package names may be passed as arguments.
set -euo pipefail
need=(build-essential cmake pkg-config liburing-dev libjemalloc-dev libcmocka-dev binutils "$@")
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
