#!/usr/bin/env bash
# Build the Debian package:   packaging/build-deb.sh
# Writes dist/xprov_<version>-<revision>_amd64.deb. Needs Debian 12 (bookworm); installs the
# missing build dependencies with apt. The Python dependencies are fetched from PyPI into a
# private virtual environment inside the package (see packaging/debian/rules for why).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

need=(debhelper dpkg-dev python3-venv)
missing=()
for pkg in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' xprov/__init__.py)
packaged=$(sed -n '1s/^xprov (\([^-]*\)-.*/\1/p' packaging/debian/changelog)
if [ "$version" != "$packaged" ]; then
  echo "xprov/__init__.py says $version but packaging/debian/changelog says $packaged" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/xprov-$version"
tar -C "$root" --exclude=__pycache__ -cf - setup.cfg pyproject.toml constraints.txt README.md xprov \
  vendor_templates docs packaging | tar -C "$work/xprov-$version" -xf -
cp -r packaging/debian "$work/xprov-$version/debian"
(cd "$work/xprov-$version" && dpkg-buildpackage -b -us -uc) > "$work/build.log" 2>&1 || {
  tail -40 "$work/build.log" >&2; exit 1; }
mkdir -p dist
mv "$work"/xprov_*.deb dist/
ls dist/xprov_*.deb
