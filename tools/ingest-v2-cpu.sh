#!/usr/bin/env bash
# CPU time per report of `netledger serve` receiving protocol v2 datagrams from a separate
# `netledger send` process on loopback (the v2 counterpart of shared/tools/ingest-cpu.sh).
# usage: tools/ingest-v2-cpu.sh NETLEDGER-BINARY N RATE [WORKERS]
# Prints "<ns of collector CPU per accepted report> <reports accepted> <datagrams lost (RcvbufErrors delta)>".
set -eu
bin=$1 n=$2 rate=$3 workers=${4:-2}
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
port=18989 http=18990 key=bench-secret-0123456789abcdef
cat >"$dir/netledger.yaml" <<YAML
data_dir: $dir/data
http: {listen: "127.0.0.1:$http"}
report:
  listen: "127.0.0.1:$port"
  workers: $workers
  keys: [{id: 1, secret: "$key"}]
YAML
"$bin" serve --config "$dir/netledger.yaml" 2>"$dir/serve.log" &
pid=$!
for _ in $(seq 50); do ss -ulnH "sport = :$port" | grep -q . && break; sleep 0.1; done
ticks() { awk '{print $14+$15}' /proc/$pid/stat; }
rcvbuf() { awk '/^Udp:/{n++} /^Udp:/ && n==2 {print $6}' /proc/net/snmp; }
t0=$(ticks); e0=$(rcvbuf)
"$bin" send --addr 127.0.0.1:$port --key-id 1 --key "$key" --count "$n" --rate "$rate" --clients 50000 >/dev/null 2>&1
sleep 1
t1=$(ticks); e1=$(rcvbuf)
got=$(curl -s http://127.0.0.1:$http/metrics | awk '/^netledger_reports_accepted_total /{print $2}')
got=$(printf '%.0f' "$got")
hz=$(getconf CLK_TCK)
echo "$(( (t1 - t0) * 1000000000 / hz / got )) $got $(( e1 - e0 ))"
