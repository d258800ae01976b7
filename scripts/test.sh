#!/usr/bin/env bash
# The whole test suite: installs missing system packages, starts PostgreSQL and an S3 server on
# loopback, runs every test against SQLite and PostgreSQL, fs and S3, the local keyring and
# SoftHSM2, then stops the services.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
# shellcheck source=scripts/services.sh
source scripts/services.sh
# --tests: libraries, integration tests and the binaries that hold unit tests (none do; see
# crates/cli/Cargo.toml), without linking each binary a second time as an empty test harness.
cargo test --workspace --tests "$@"
