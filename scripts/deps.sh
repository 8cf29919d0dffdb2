#!/usr/bin/env bash
# Installs the Debian packages listed in the manifest that are missing. As root it runs
# apt-get; otherwise it prints the exact command to run and fails.
set -euo pipefail
manifest=${1:-vendor/packages.txt}
wanted=$(grep -v '^\s*#' "$manifest" | tr -s ' \n' '\n' | grep -v '^$' | sort -u)
missing=()
for pkg in $wanted; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == *"install ok installed"* ]] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  exit 0
fi
echo "deps: missing Debian packages: ${missing[*]}" >&2
echo "deps: install them with:" >&2
echo "  sudo apt-get install -y ${missing[*]}" >&2
exit 1
