#!/usr/bin/env bash
# Regenerate the vendored browser libraries of the video calls (assets/vendor/, see SOURCES.md).
# The product never fetches them at run time; run this only to move to another version.
# Needs npm (`npm pack` downloads the published tarballs; nothing is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
JANUS=janus-gateway@1.4.2
ADAPTER=webrtc-adapter@9.0.6
# sha256 of the tarballs as published (checked, so a changed registry answer fails loudly)
JANUS_SHA=832db9248d4a493f33d13bf48acc61a11ceefa2350de11b942bafcd23bbb8693
ADAPTER_SHA=361e50645a020ab2f598b5ea740ab81e49db32a22e1c588ecfde36ce874b428e

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$JANUS" "$ADAPTER" >/dev/null)
echo "$JANUS_SHA  $tmp/janus-gateway-1.4.2.tgz" | sha256sum -c --quiet
echo "$ADAPTER_SHA  $tmp/webrtc-adapter-9.0.6.tgz" | sha256sum -c --quiet
mkdir -p "$tmp/janus" "$tmp/adapter" assets/vendor
tar -xzf "$tmp/janus-gateway-1.4.2.tgz" -C "$tmp/janus" --strip-components=1
tar -xzf "$tmp/webrtc-adapter-9.0.6.tgz" -C "$tmp/adapter" --strip-components=1

# webrtc-adapter's browser build: a classic script defining the global `adapter`
cp "$tmp/adapter/out/adapter.js" assets/vendor/adapter.js
# janus.js ships as an ES module; Dash loads every assets/*.js as a classic <script>, so its
# one `export` line becomes a global (the rest of the file is unchanged)
src="$tmp/janus/npm/dist/janus.es.js"
grep -qx 'export { Janus as default };' "$src" || { echo "janus.es.js: export line not found" >&2; exit 1; }
sed 's/^export { Janus as default };$/window.Janus = Janus;/' "$src" > assets/vendor/janus.js
if grep -qE '^\s*(import|export)\b' assets/vendor/janus.js; then
  echo "janus.js still has an import/export statement" >&2; exit 1
fi
sha256sum assets/vendor/adapter.js assets/vendor/janus.js
