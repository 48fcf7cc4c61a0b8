#!/usr/bin/env bash
# The ssh honeypot under load, on loopback, with Debian's OpenSSH tools as the clients:
#  1. key exchanges per second (ssh-keyscan: version exchange, KEXINIT, curve25519, the ed25519
#     host-key signature, then the client hangs up), P clients at a time;
#  2. full logins per second (sshpass + ssh: kex, password accepted, exec `true`, close);
#  3. the decky's RSS idle and with 100 open interactive sessions (ssh -tt, shell started).
# The clients run on the same cores as the decky, so the rates are lower bounds.
#
# usage: benches/ssh_honeypot.sh [path/to/decnet-decky (release)]
# needs: openssh-client sshpass; figures go to BENCHMARKS.md by hand.
set -euo pipefail

BIN=${1:-${CARGO_TARGET_DIR:-target}/release/decnet-decky}
PORT=${PORT:-22999}
N=${N:-400}
P=${P:-4}
SESSIONS=${SESSIONS:-100}
OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=20)

HOSTNAME=bench DECNET_SERVICE_CONFIG='{"accept":"any"}' DECNET_SSH_HOST_KEY=/nonexistent \
    "$BIN" serve ssh --bind 127.0.0.1 --port "$PORT/tcp" --max-conns 1024 --timeout 60 \
    >/dev/null 2>/tmp/ssh-bench-decky.err &
DECKY=$!
clients=()
cleanup() {
    for c in "${clients[@]}"; do kill "$c" 2>/dev/null || true; done
    kill "$DECKY" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do
    grep -q serving /tmp/ssh-bench-decky.err 2>/dev/null && break
    sleep 0.1
done

rss() { awk '/^VmRSS/ {print $2 " kB"}' "/proc/$DECKY/status"; }
# The decky's CPU time so far, in clock ticks (utime + stime).
cpu() { awk '{print $14 + $15}' "/proc/$DECKY/stat"; }
HZ=$(getconf CLK_TCK)
echo "idle RSS: $(rss)"

start=$(date +%s.%N)
c0=$(cpu)
seq "$N" | xargs -P "$P" -I{} ssh-keyscan -T 20 -t ed25519 -p "$PORT" 127.0.0.1 >/dev/null 2>&1
end=$(date +%s.%N)
c1=$(cpu)
echo "key exchanges: $N in $(echo "$end - $start" | bc) s = $(echo "$N / ($end - $start)" | bc) /s (P=$P); decky CPU $(echo "scale=3; ($c1 - $c0) / $HZ" | bc) s = $(echo "$N * $HZ / ($c1 - $c0)" | bc) per CPU-second"

L=$((N / 4))
start=$(date +%s.%N)
c0=$(cpu)
seq "$L" | xargs -P "$P" -I{} sshpass -p x ssh "${OPTS[@]}" -p "$PORT" -o PubkeyAuthentication=no \
    bench@127.0.0.1 true >/dev/null 2>&1
end=$(date +%s.%N)
c1=$(cpu)
echo "full logins + exec: $L in $(echo "$end - $start" | bc) s = $(echo "$L / ($end - $start)" | bc) /s (P=$P); decky CPU $(echo "scale=3; ($c1 - $c0) / $HZ" | bc) s = $(echo "$L * $HZ / ($c1 - $c0)" | bc) per CPU-second"

for _ in $(seq "$SESSIONS"); do
    (sleep 45 | sshpass -p x ssh -tt "${OPTS[@]}" -p "$PORT" -o PubkeyAuthentication=no \
        bench@127.0.0.1 >/dev/null 2>&1) &
    clients+=($!)
done
# Until every session is established (its shell prompt sent), at most 40 s.
for _ in $(seq 400); do
    n=$(ss -Htn state established "( sport = :$PORT )" | wc -l)
    [ "$n" -ge "$SESSIONS" ] && break
    sleep 0.1
done
sleep 1
echo "open sessions: $(ss -Htn state established "( sport = :$PORT )" | wc -l), RSS: $(rss), threads: $(ls "/proc/$DECKY/task" | wc -l)"
