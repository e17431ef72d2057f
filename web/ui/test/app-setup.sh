#!/bin/sh
# Two loopback nodes (St Mary, Riverside) with studies, grants, access
# requests and AEs, and a dev server for each, for test/app-check.mjs.
#
#   sh test/app-setup.sh /tmp/pa        # from web/ui; needs /tmp/pa/pacsnet
#   . /tmp/pa/env && node test/app-check.mjs
#   kill $(cat /tmp/pa/pids)            # stops exactly what it started
#
# Build first: go build -o /tmp/pa/pacsnet ./cmd/pacsnet (repo root).
set -eu
DIR=${1:-/tmp/pa}
UI=$(cd "$(dirname "$0")/.." && pwd)
REPO=$(cd "$UI/../.." && pwd)
P="$DIR/pacsnet"
S="$P --home $DIR/stmary"
R="$P --home $DIR/riverside"
rm -rf "$DIR/stmary" "$DIR/riverside" "$DIR/ct" "$DIR/ct2"
: > "$DIR/pids"
$S init --name "St Mary" >/dev/null
$R init --name "Riverside" >/dev/null
# St Mary lets Riverside search it and ask for break-glass access.
sed -i 's/^\[requests\]$/[requests]\n  query_partners = ["Riverside"]\n  emergency_partners = ["Riverside"]/' "$DIR/stmary/config.toml"
$S serve --http 127.0.0.1:17480 --dicom 127.0.0.1:17112 --p2p /ip4/127.0.0.1/tcp/14801 >"$DIR/stmary.log" 2>&1 &
echo $! >> "$DIR/pids"
$R serve --http 127.0.0.1:17481 --dicom 127.0.0.1:17113 --p2p /ip4/127.0.0.1/tcp/14811 >"$DIR/riverside.log" 2>&1 &
echo $! >> "$DIR/pids"
for i in 1 2 3 4 5 6 7 8 9 10; do
  [ -f "$DIR/stmary/run/api.json" ] && [ -f "$DIR/riverside/run/api.json" ] && break
  sleep 1
done
$R peer add "$($S invite 2>/dev/null)" >/dev/null 2>&1
$S peer add "$($R invite 2>/dev/null)" >/dev/null 2>&1
$S import "$REPO/testdata/dicom" >/dev/null 2>&1 || true
$S synth --out "$DIR/ct" --slices 150 >/dev/null
$S synth --out "$DIR/ct2" --slices 60 --seed 2 --patient-id SYN-05680492 >/dev/null
$S import "$DIR/ct" "$DIR/ct2" >/dev/null 2>&1
U1=$($S studies --json | python3 -c 'import json,sys; print([s["study_uid"] for s in json.load(sys.stdin) if s["instances"]==150][0])')
U2=$($S studies --json | python3 -c 'import json,sys; print([s["study_uid"] for s in json.load(sys.stdin) if s["instances"]==60][0])')
$S grant --to Riverside --study "$U1" --expires 72h >/dev/null
$S grant --to Riverside --study "$U2" --expires 72h >/dev/null
$S grant --to Riverside --study 1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.1 --expires 72h >/dev/null
G=$($S grant --to Riverside --study 1.2.826.0.1.3680043.2.1125.1.38381854871216336385978062044218957 --expires 3d --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["grant_id"])')
$S revoke "$G" --reason treatment-ended >/dev/null
G=$($S grant --to Riverside --study 1.2.826.0.1.3680043.8.498.12406831542731051035295345080039845114 --expires 3d --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["grant_id"])')
$S revoke "$G" --reason consent-withdrawn >/dev/null
$S ae add RIVERSIDE --host 127.0.0.1 --port 17113 >/dev/null
$R ae add STMARY --host 127.0.0.1 --port 17112 >/dev/null
$R import "$REPO/testdata/dicom/cr_small__6154.dcm" >/dev/null 2>&1 || true
$R request --to "St Mary" --patient-id PANCREAS_0001 --purpose treatment --reason referral --note "Patient <b>Doe</b> transferred" >/dev/null
$R request --to "St Mary" --patient-id 4MR1 --purpose treatment --reason emergency-care --emergency >/dev/null
$R request --to "St Mary" --patient-id 0010 --purpose second-opinion --reason second-opinion >/dev/null
sleep 1
cd "$UI"
PACSNET_HOME="$DIR/stmary" PORT=17600 ROLE=admin node test/app-devserver.mjs >"$DIR/dev1.log" 2>&1 &
echo $! >> "$DIR/pids"
PACSNET_HOME="$DIR/riverside" PORT=17601 ROLE=clinician node test/app-devserver.mjs >"$DIR/dev2.log" 2>&1 &
echo $! >> "$DIR/pids"
sleep 1
cat > "$DIR/env" <<EOT
export ADMIN_URL=http://127.0.0.1:17600 CLINICIAN_URL=http://127.0.0.1:17601 SYNTH_UID=$U1 SYNTH2_UID=$U2
EOT
echo "ready: admin http://127.0.0.1:17600/app/ clinician http://127.0.0.1:17601/app/ (pids in $DIR/pids)"
