#!/usr/bin/env bash
# failover.sh — measure leader failover with real processes.
#
# Starts a throw-away PostgreSQL (initdb in a temporary directory, as the
# postgres user when run as root; a free loopback port), three
# `keyhold server` replicas on it sharing one root key file, then KILLS
# times: find the leader (`keyhold status --output json`), kill -9 it, time
# until a surviving replica reports another leader, restart the killed one
# and wait until it is ready. Prints every figure and min/median/max.
# Everything it started is stopped on exit (pg_ctl stop -m immediate, the
# servers killed), whatever the outcome.
#
#   scripts/failover.sh                 # 20 kills
#   KILLS=5 scripts/failover.sh
#   KEYHOLD_BIN=./keyhold scripts/failover.sh   # skip the go build
#
# The same deployment also serves the load figures with N replicas: one
# `keyhold bench --endpoint` process per replica, all at once, each report
# printed and then summed per phase (req/s added, worst p99):
#
#   scripts/failover.sh bench 3 --phases get,put --clients 1,11 --duration 5s
#   scripts/failover.sh bench 1 --phases get,put --clients 1,32 --duration 5s
#
# Needs PostgreSQL's server binaries (PGBIN, default Debian 12's
# /usr/lib/postgresql/15/bin), jq and curl.
set -euo pipefail

mode=${1:-failover}
case $mode in
failover) nrep=3 ;;
bench)
	nrep=${2:?usage: failover.sh bench N [keyhold bench flags]}
	[ "$nrep" -ge 1 ] && [ "$nrep" -le 3 ] || { echo "bench: N must be 1..3" >&2; exit 2; }
	shift 2
	;;
*) echo "usage: failover.sh [failover | bench N [keyhold bench flags]]" >&2; exit 2 ;;
esac
KILLS=${KILLS:-20}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
POLL=${POLL:-0.1} # seconds between status polls while waiting for a leader

work=$(mktemp -d /tmp/khfo.XXXXXX) # short: the Unix socket path must fit in 107 bytes
pids=()
pgdata="$work/pg/data"
pgstarted=
asPG=()
if [ "$(id -u)" = 0 ]; then asPG=(runuser -u postgres --); fi # PostgreSQL refuses to run as root

cleanup() {
	set +e
	for p in "${pids[@]}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
	[ -n "$pgstarted" ] && "${asPG[@]}" "$PGBIN/pg_ctl" -D "$pgdata" -m immediate stop >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

if [ -z "${KEYHOLD_BIN:-}" ]; then
	echo "building keyhold…" >&2
	go build -o "$work/keyhold" ./cmd/keyhold
	KEYHOLD_BIN="$work/keyhold"
fi

# PostgreSQL, as pgtest does it.
mkdir -p "$work/pg"; mkdir -m 700 "$work/key"
if [ ${#asPG[@]} -gt 0 ]; then
	chmod 711 "$work" # postgres must reach pg/; the replicas' files stay in 0700 directories
	chown postgres: "$work/pg"
fi
"${asPG[@]}" "$PGBIN/initdb" -D "$pgdata" -A trust -U keyhold --no-sync -E UTF8 >/dev/null
pgport=$(freeport)
"${asPG[@]}" "$PGBIN/pg_ctl" -D "$pgdata" -l "$work/pg/log" -w -t 60 \
	-o "-p $pgport -k $work/pg -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
pgstarted=1
storage="postgres://keyhold@127.0.0.1:$pgport/postgres?sslmode=disable"

ids=(kh-a kh-b kh-c)
declare -A http tls idx
for i in 0 1 2; do
	http[$i]=$(freeport)
	tls[$i]=$(freeport)
	idx[${ids[$i]}]=$i
	mkdir -m 700 -p "$work/d$i"
	pids[$i]=
done

start() { # start replica $1 (index)
	local i=$1
	"$KEYHOLD_BIN" server --storage "$storage" --data-dir "$work/d$i" --root-key-file "$work/key/root.key" \
		--replica-id "${ids[$i]}" --listen "127.0.0.1:${http[$i]}" --tls-listen "127.0.0.1:${tls[$i]}" \
		--log-level warn >>"$work/server$i.log" 2>&1 &
	pids[$i]=$!
}
waitready() { # wait until replica $1 answers /readyz
	local i=$1 n=0
	until curl -fsS -o /dev/null "http://127.0.0.1:${http[$i]}/readyz" 2>/dev/null; do
		n=$((n + 1))
		if [ $n -gt 600 ] || ! kill -0 "${pids[$i]}" 2>/dev/null; then
			echo "replica ${ids[$i]} did not become ready; its log:" >&2
			tail -20 "$work/server$i.log" >&2
			exit 1
		fi
		sleep 0.1
	done
}
leader_via() { # the leader as replica $1 reports it ("" if none or unreachable)
	"$KEYHOLD_BIN" status --output json --endpoint "http://127.0.0.1:${http[$1]}" 2>/dev/null | jq -r '.Leader // ""' 2>/dev/null || true
}

# The first replica creates the root key and the account; then the others.
start 0
waitready 0
export KEYHOLD_ACCESS_KEY_ID KEYHOLD_ACCESS_KEY_SECRET
KEYHOLD_ACCESS_KEY_ID=$(jq -r .access_key_id "$work/d0/root-credentials.json")
KEYHOLD_ACCESS_KEY_SECRET=$(jq -r .access_key_secret "$work/d0/root-credentials.json")
for ((i = 1; i < nrep; i++)); do start $i; done
for ((i = 1; i < nrep; i++)); do waitready $i; done

if [ "$mode" = bench ]; then
	bpids=()
	for ((i = 0; i < nrep; i++)); do
		"$KEYHOLD_BIN" bench --endpoint "http://127.0.0.1:${http[$i]}" --output json "$@" \
			>"$work/bench$i.json" 2>"$work/bench$i.err" &
		bpids+=($!)
	done
	rc=0
	for p in "${bpids[@]}"; do wait "$p" || rc=1; done
	for ((i = 0; i < nrep; i++)); do
		echo "== replica ${ids[$i]}"
		jq -r '.results[] | "\(.phase)\t\(.clients) clients\t\(.per_sec|floor)/s\tp50 \(.p50_us/1000|floor) ms\tp99 \(.p99_us/1000|floor) ms\terrors \(.errors)"' \
			"$work/bench$i.json" || cat "$work/bench$i.err" >&2
	done
	echo "== sum over $nrep replicas (same host)"
	jq -rs '[.[].results[]] | group_by([.phase, .clients]) | .[] |
		"\(.[0].phase)\t\(map(.clients)|add) clients\t\(map(.per_sec)|add|floor)/s\tworst p99 \(map(.p99_us)|max/1000|floor) ms\terrors \(map(.errors)|add)"' \
		"$work"/bench*.json
	exit $rc
fi

times=()
for k in $(seq 1 "$KILLS"); do
	leader=
	for _ in $(seq 1 200); do # the first lease may still be settling
		leader=$(leader_via 0)
		[ -n "$leader" ] && break
		sleep "$POLL"
	done
	[ -n "$leader" ] || { echo "no leader before kill $k" >&2; exit 1; }
	li=${idx[$leader]}
	others=()
	for i in 0 1 2; do [ "$i" != "$li" ] && others+=("$i"); done
	t0=$(now_ms)
	kill -9 "${pids[$li]}"
	wait "${pids[$li]}" 2>/dev/null || true
	pids[$li]=
	next=
	while :; do
		for i in "${others[@]}"; do
			l=$(leader_via "$i")
			if [ -n "$l" ] && [ "$l" != "$leader" ]; then next=$l; break; fi
		done
		[ -n "$next" ] && break
		if [ $(($(now_ms) - t0)) -gt 60000 ]; then echo "no new leader 60 s after kill $k" >&2; exit 1; fi
		sleep "$POLL"
	done
	ms=$(($(now_ms) - t0))
	times+=("$ms")
	printf 'kill %2d: %s killed, %s leads after %d.%03d s\n' "$k" "$leader" "$next" $((ms / 1000)) $((ms % 1000))
	start "$li"
	waitready "$li"
done

sorted=($(printf '%s\n' "${times[@]}" | sort -n))
n=${#sorted[@]}
if [ $((n % 2)) = 1 ]; then med=${sorted[$((n / 2))]}; else med=$(((sorted[n / 2 - 1] + sorted[n / 2]) / 2)); fi
fmt() { printf '%d.%03d s' $(($1 / 1000)) $(($1 % 1000)); }
echo "failover over $n leader kills (kill -9 to another replica reporting a new leader; poll every ${POLL}s):"
echo "  min $(fmt "${sorted[0]}")  median $(fmt "$med")  max $(fmt "${sorted[$((n - 1))]}")"
