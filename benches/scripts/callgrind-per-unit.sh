#!/usr/bin/env bash
# Instructions per call (or per streamed message) of `volley-cost`, counted by callgrind: two runs
# of different lengths, so that setup and teardown cancel out of the difference.
#
#   cargo build --release -p volley-benches --bin volley-cost
#   benches/scripts/callgrind-per-unit.sh target/release/volley-cost unary 10000 30000 128
#   benches/scripts/callgrind-per-unit.sh target/release/volley-cost stream 20000 60000
#
# Prints: BIN MODE: Ir N1=... N2=... per-unit=(Ir(N2) - Ir(N1)) / (N2 - N1). The callgrind
# files stay in $TMPDIR (or /tmp) as cg.BIN.MODE.N for callgrind_annotate.
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: $0 BIN MODE N1 N2 [ARGS...]   (volley-cost's mode, two unit counts, its other arguments)" >&2
    exit 2
fi
bin=$1 mode=$2 n1=$3 n2=$4
shift 4
dir=${TMPDIR:-/tmp}
totals=()
for n in "$n1" "$n2"; do
    out="$dir/cg.$(basename "$bin").$mode.$n"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$mode" "$n" "$@" > "$out.log" 2>&1
    totals+=("$(awk '/^summary:/ { print $2; exit }' "$out")")
done
echo "$(basename "$bin") $mode: Ir $n1=${totals[0]} $n2=${totals[1]} per-unit=$(( (totals[1] - totals[0]) / (n2 - n1) ))"
