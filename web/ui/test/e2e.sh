#!/usr/bin/env bash
# End-to-end check of the viewer, on loopback only:
#   a temporary node (pacsnet init/serve), a synthetic 24-slice CT (two
#   series) and real files of testdata/dicom imported, test/devserver.mjs in
#   front of it, test/viewer-check.mjs in headless Chromium.
#
#   cd web/ui && npm ci && node build.mjs && test/e2e.sh [screenshot.png]
#
# PACSNET=/path/to/pacsnet uses that binary (default: go build into the
# temporary folder). Stops every process it started and removes its folder.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ui="$(dirname "$here")"
root="$(cd "$ui/../.." && pwd)"
tmp="$(mktemp -d /tmp/pacsnet-viewer-e2e.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bin="${PACSNET:-}"
if [ -z "$bin" ]; then
  bin="$tmp/pacsnet"
  (cd "$root" && go build -o "$bin" ./cmd/pacsnet)
fi
home="$tmp/home"
"$bin" --home "$home" init --name "Viewer E2E" >/dev/null
"$bin" --home "$home" serve --http 127.0.0.1:0 --p2p /ip4/127.0.0.1/tcp/0 --dicom 127.0.0.1:0 >"$tmp/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$home/run/api.json" ] && break; sleep 0.1; done
api="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).api)' "$home/run/api.json")"

ct="$("$bin" --home "$home" synth --out "$tmp/ct" --slices 24 --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).study_uid))')"
"$bin" --home "$home" synth --out "$tmp/ct2" --slices 6 --size 256 --seed 2 --study-uid "$ct" >/dev/null
d="$root/testdata/dicom"
"$bin" --home "$home" import "$tmp/ct" "$tmp/ct2" \
  "$d/us_multiframe-8_jpeg-baseline_bad-charset-term__IM00001.fragmented_no_bot_jpeg_baseline.50.dcm" \
  "$d/ct_multiframe-2_jpeg-lossless-p14_frags-no-bot__CT0012.fragmented_no_bot_jpeg_lossless.57.dcm" \
  "$d/mr_jpeg2000-lossless__MR_small_jp2klossless.dcm" \
  "$d/nm_jpeg-lossless-sv1__JPEG-LL.dcm" >/dev/null

PACSNET_API="$api" PACSNET_TOKEN="$(cat "$home/keys/api.token")" node "$here/devserver.mjs" --port 0 >"$tmp/dev.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q '^devserver http' "$tmp/dev.log" 2>/dev/null && break; sleep 0.1; done
base="$(sed -n 's/^devserver \(http[^ ]*\).*/\1/p' "$tmp/dev.log")"

VIEWER_BASE="$base" STUDY="$ct" \
  CINE_STUDY=1.3.6.1.4.1.25403.166563008443.732.20120418082458.1 \
  MORE_STUDIES=1.3.6.1.4.1.5962.1.2.10.1166562673.14401,1.3.6.1.4.1.5962.1.2.4.20040826185059.5457,1.3.6.1.4.1.5962.1.2.8.20040826185059.5457 \
  SCREENSHOT="${1:-}" node "$here/viewer-check.mjs"
