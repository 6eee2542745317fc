#!/bin/bash
# Runs once at template build (start_cmd), with the template's bucket mounted by the server
# at $STORAGE_BASE_PATH; the sandbox is snapshotted after it. The seed's version mounted the
# bucket with goofys here, with keys in ~/.aws; on Bulkhead the mount is the host's and this
# script only checks it, so a build whose storage does not work fails here, not at run time.
set -euo pipefail
base="${STORAGE_BASE_PATH:-/opt/sentient}"
log() { echo "[E2B-SETUP] $*"; }

log "checking the storage at $base (bucket ${ROMA_S3_BUCKET:-?}, region ${AWS_REGION:-?})"
if ! awk -v p="$base" '$5 == p {found=1} END {exit !found}' /proc/self/mountinfo; then
    log "ERROR: $base is not a mount point: declare [storage] in e2b.toml and pass the keys as --secret"
    exit 1
fi
for v in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN; do
    if [ -n "${!v:-}" ]; then
        log "ERROR: $v is set in the sandbox; the keys must stay with the server"
        exit 1
    fi
done
if [ -e "$HOME/.aws/credentials" ] || [ -e /root/.aws/credentials ]; then
    log "ERROR: an AWS credentials file is in the template"
    exit 1
fi
mkdir -p "$base/executions"
probe="$base/executions/.setup-probe-$$"
echo "written at template build" > "$probe"
if [ "$(cat "$probe")" != "written at template build" ]; then
    log "ERROR: $probe did not read back"
    exit 1
fi
rm -f "$probe"
log "storage mounted and writable at $base"
python3 -c 'import roma_paths; print("[E2B-SETUP] executions at", roma_paths.executions_dir())'
log "setup complete"
