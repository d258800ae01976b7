#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each; FUZZ_SECONDS overrides) on the
# stable toolchain (no sanitizer: AddressSanitizer needs nightly). Seeds come from fuzz/corpus;
# what the fuzzer finds goes to a scratch directory, so the checked-in corpus stays as it is.
# A crash, a panic, a timeout or the RSS limit fails the run and leaves the input in fuzz/artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
seconds="${FUZZ_SECONDS:-60}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in pdf_ingest pdf_verify tsa_request cms_signed_data multipart_scan; do
  echo "==> fuzz $target (${seconds}s)"
  mkdir -p "$scratch/$target"
  cargo fuzz run --sanitizer none --release "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -max_len=1048576 -print_final_stats=1 2>&1 \
    | grep -E "^(#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|thread .* panicked|SUMMARY|Test unit written)" || true
  if [ "${PIPESTATUS[0]}" -ne 0 ]; then
    echo "!! fuzz target $target failed; the input is in fuzz/artifacts/$target" >&2
    exit 1
  fi
done
