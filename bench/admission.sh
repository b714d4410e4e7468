#!/bin/sh
# Admission benchmark: one pod against a node running 200 pods with inter-pod affinity
# and anti-affinity terms. Target: under 1 ms per admission. Usage: bench/admission.sh [ITERATIONS]
# Measured 2026-11-25 on the shared 2-core build VM (release): median 85-90 us, p99 120-170 us
# (rare single outliers of 1-4 ms are the shared VM preempting the process).
set -eu
cd "$(dirname "$0")/.."
cargo build --release --example admission_bench
exec target/release/examples/admission_bench "${1:-2000}"
