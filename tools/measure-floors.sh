#!/usr/bin/env bash
# Measures every open speed floor of issues 4, 6 and 7 in one sequential run from this checkout,
# the way docs/benchmarks.md's "Open floors" table was measured: build the test binaries, then
# the original accounting step (the anchor), netledger end to end, the anchor again, enrich +
# aggregate, top, RIB lookups and the 100k-socket dump. Run it on a quiet machine, as root.
#
# usage: READLOG=/path/to/trafstat/cron/readlog.php tools/measure-floors.sh [OUT]
#   READLOG  the original's cron/readlog.php (see tools/accounting-anchor.sh)
#   WORK     the anchor's work folder holding log1m (default /tmp/seed-pipeline)
#   OUT      where binaries and all.txt go (default /tmp/measure)
set -u
: "${READLOG:?set READLOG to the original readlog.php}"
out=${1:-/tmp/measure}; mkdir -p "$out/bin"
work=${WORK:-/tmp/seed-pipeline}
cd "$(dirname "$0")/.."
export NETLEDGER_TESTDATA=${NETLEDGER_TESTDATA:-/work/shared/testdata}
git log --oneline -1 | tee "$out/head.txt"
for p in pipeline store/sqlite routing source/tcpinfo; do
  (cd "internal/$p" && go test -c -o "$out/bin/$(basename $p).test" .) || exit 1
done
ts() { echo "== $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg) $*"; }
anchor() { READLOG=$READLOG WORK=$work tools/accounting-anchor.sh 1; }
{
  ts anchor; anchor
  ts end-to-end; (cd internal/pipeline && NETLEDGER_SEED_LOG=$work/log1m "$out/bin/pipeline.test" -test.run XXX \
    -test.bench 'EndToEnd/.*-1h' -test.benchmem -test.cpu 1,2 -test.benchtime 1x -test.count 3)
  ts anchor; anchor
  ts enrich-aggregate; (cd internal/pipeline && "$out/bin/pipeline.test" -test.run XXX \
    -test.bench 'BenchmarkEnrichAggregateBatch/^[^f]*$' -test.benchmem -test.cpu 1 -test.benchtime 3000000x -test.count 2)
  ts enrich-aggregate-flush; (cd internal/pipeline && "$out/bin/pipeline.test" -test.run XXX \
    -test.bench 'BenchmarkEnrichAggregateBatch/.*flush' -test.benchmem -test.cpu 1 -test.benchtime 8000000x -test.count 2)
  ts top; (cd internal/store/sqlite && "$out/bin/sqlite.test" -test.run XXX -test.bench Top -test.benchmem -test.cpu 1,2 -test.count 3)
  ts lookup; (cd internal/routing && "$out/bin/routing.test" -test.run XXX -test.bench Lookup -test.benchmem -test.cpu 1 -test.count 3)
  ts dump; (cd internal/source/tcpinfo && "$out/bin/tcpinfo.test" -test.run XXX -test.bench BenchmarkDump100k \
    -test.benchtime 10x -test.benchmem -test.cpu 1,2 -test.count 3)
  ts done
} 2>&1 | tee "$out/all.txt"
