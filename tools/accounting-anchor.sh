#!/usr/bin/env bash
# The anchor of the accounting benchmark (shared/BASELINES.md, "Accounting pipeline"): runs the
# original trafstat accounting step — its PHP log reader piped into PostgreSQL with ip4r — on the
# 1,000,000 generated log lines and the 2002 table, RUNS times, through shared/tools/seed-pipeline/run.sh,
# and prints each wall time and the median. netledger's end-to-end figure is compared to it as a
# ratio measured in the same session (same machine, same minutes).
#
# usage: READLOG=/path/to/trafstat/cron/readlog.php tools/accounting-anchor.sh [RUNS]
#   READLOG        the original's cron/readlog.php (public repository krokodilerian/trafstat)
#   SEED_PIPELINE  folder of run.sh (default: $NETLEDGER_TESTDATA/../tools/seed-pipeline)
#   WORK           work folder (default /tmp/seed-pipeline); it keeps log1m (the 1 M input lines,
#                  written once by gen.py with a fixed seed) and rt (prefix<TAB>path) for feeding
#                  netledger the same input.
# Needs root, a local PostgreSQL 15 cluster and the Debian packages postgresql-15-ip4r php-cli
# php-pgsql bgpdump bc (apt-get install -y …); it says what is missing and exits 2.
set -eu
runs=${1:-3}
testdata=${NETLEDGER_TESTDATA:-/work/shared/testdata}
sp=${SEED_PIPELINE:-$testdata/../tools/seed-pipeline}
missing=()
for c in php psql pg_ctlcluster bgpdump bc python3; do
  command -v "$c" >/dev/null || missing+=("$c")
done
[ -f /usr/share/postgresql/15/extension/ip4r.control ] || missing+=("postgresql-15-ip4r")
php -m 2>/dev/null | grep -qx pgsql || missing+=("php-pgsql")
if [ ${#missing[@]} -gt 0 ]; then
  echo "accounting-anchor: missing ${missing[*]} (Debian: apt-get install -y postgresql-15-ip4r php-cli php-pgsql bgpdump bc)" >&2
  exit 2
fi
[ -x "$sp/run.sh" ] || { echo "accounting-anchor: no run.sh in $sp (set SEED_PIPELINE)" >&2; exit 2; }
[ -f "${READLOG:-}" ] || { echo "accounting-anchor: set READLOG to the original's cron/readlog.php" >&2; exit 2; }
export READLOG NETLEDGER_TESTDATA=$testdata WORK=${WORK:-/tmp/seed-pipeline}
times=()
for i in $(seq "$runs"); do
  out=$("$sp/run.sh")
  echo "$out" | sed "s/^/run $i: /"
  times+=("$(echo "$out" | sed -n 's/.*: \([0-9.]*\) s wall/\1/p')")
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}')
echo "original accounting step, 1,000,000 log lines, median of $runs: $median s wall"
