#!/usr/bin/env bash
# Issue 9's scale-out proof and benchmark: PostgreSQL and an S3-compatible server on loopback
# (scripts/services.sh), then three release `sigillum serve` nodes behind haproxy with one killed
# mid-flow, and the flows/s of SQLite, PostgreSQL and three PostgreSQL nodes. See
# crates/testkit/src/bin/scale-out.rs for what it checks. Extra arguments go to the binary
# (e.g. --flows 60 --bench-flows 60 --check).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v haproxy >/dev/null || scripts/deps.sh
cargo build --release --locked --bin sigillum --bin scale-out
source scripts/services.sh
target/release/scale-out "$@"
