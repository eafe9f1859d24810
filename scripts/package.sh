#!/usr/bin/env bash
# Builds signpost_<version>_<arch>.deb from this checkout with dpkg-deb alone: the binary (with
# cluster mode), the systemd unit, /etc/signpost/signpost.toml (every key at its default,
# commented out, from `signpost config-sample`) and the example zones as conffiles, the man pages
# and shell completions made by the binary itself, and the maintainer scripts that create the
# `signpost` user and /var/lib/signpost and let the binary bind port 53.
#
# Usage: scripts/package.sh [--debug] [OUTDIR]
#   --debug  package target/debug's build (what the tests install) instead of a release build
#   OUTDIR   where the .deb goes (default target/debian); its path is printed last
# DEB_COMPRESSION (xz by default) is passed to dpkg-deb -Z; the tests use none.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
if [ "${1:-}" = --debug ]; then profile=debug; shift; fi
out=${1:-target/debian}

if [ $profile = release ]; then
  cargo build --quiet --release --features cluster --bin signpost
else
  cargo build --quiet --features cluster --bin signpost
fi
bin=target/$profile/signpost
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"

install -D -m 0755 "$bin" "$stage/usr/bin/signpost"
strip --strip-unneeded "$stage/usr/bin/signpost"
install -D -m 0644 packaging/signpost.service "$stage/lib/systemd/system/signpost.service"
install -d -m 0755 "$stage/etc/signpost/zones"
"$bin" config-sample >"$stage/etc/signpost/signpost.toml"
chmod 0644 "$stage/etc/signpost/signpost.toml"
install -m 0644 zones/*.toml "$stage/etc/signpost/zones/"

pages=$(mktemp -d)
"$bin" man "$pages" >/dev/null
install -d "$stage/usr/share/man/man1" "$stage/usr/share/man/man5"
for page in "$pages"/*.1; do gzip -9n <"$page" >"$stage/usr/share/man/man1/$(basename "$page").gz"; done
for page in "$pages"/*.5; do gzip -9n <"$page" >"$stage/usr/share/man/man5/$(basename "$page").gz"; done
rm -rf "$pages"
chmod 0644 "$stage"/usr/share/man/man*/*

install -d "$stage/usr/share/bash-completion/completions" "$stage/usr/share/zsh/vendor-completions" \
  "$stage/usr/share/fish/vendor_completions.d"
"$bin" completions bash >"$stage/usr/share/bash-completion/completions/signpost"
"$bin" completions zsh >"$stage/usr/share/zsh/vendor-completions/_signpost"
"$bin" completions fish >"$stage/usr/share/fish/vendor_completions.d/signpost.fish"
chmod 0644 "$stage"/usr/share/bash-completion/completions/* "$stage"/usr/share/zsh/vendor-completions/* \
  "$stage"/usr/share/fish/vendor_completions.d/*

install -D -m 0644 packaging/debian/copyright "$stage/usr/share/doc/signpost/copyright"
printf 'signpost (%s) unstable; urgency=medium\n\n  * Built from this checkout by scripts/package.sh.\n\n -- signpost maintainers <maintainers@users.noreply.r-seed-94dafe79.example>  %s\n' \
  "$version" "$(date -R)" | gzip -9n >"$stage/usr/share/doc/signpost/changelog.gz"
chmod 0644 "$stage/usr/share/doc/signpost/changelog.gz"

install -d "$stage/DEBIAN"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" packaging/debian/control >"$stage/DEBIAN/control"
echo "Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)" >>"$stage/DEBIAN/control"
(cd "$stage" && find etc -type f | sed 's|^|/|' | sort) >"$stage/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"

mkdir -p "$out"
deb="$out/signpost_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$stage" "$deb" >/dev/null
echo "$deb"
