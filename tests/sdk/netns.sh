#!/usr/bin/env bash
# Runs a command in a network namespace of its own whose resolver is 127.0.0.1 there, for
# the SDK suite's domain pass: the suite starts `bulkhead serve` on 127.0.0.1:443 and a DNS
# responder (dns_responder.py) for its domain inside it, so SDK releases that only know E2B_DOMAIN
# reach https://api.<domain> and https://<port>-<id>.<domain> without touching the host's
# network. The namespace and its /etc/netns directory are removed afterwards.
set -euo pipefail
ns="bulkhead-sdk-$$"
cleanup() {
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "/etc/netns/$ns"
}
trap cleanup EXIT
ip netns add "$ns"
mkdir -p "/etc/netns/$ns"
echo "nameserver 127.0.0.1" > "/etc/netns/$ns/resolv.conf"
ip netns exec "$ns" ip link set lo up
# Not `ip netns exec` for the command: it remounts /sys, which hides the cgroup hierarchy the
# server needs. Only the network namespace is entered, and resolv.conf is bound over in a
# mount namespace of the command's own (a slave: host mounts still appear in it).
# Not exec: the trap must run after the command.
nsenter --net="/run/netns/$ns" unshare --mount --propagation slave \
  sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' "/etc/netns/$ns/resolv.conf" "$@"
