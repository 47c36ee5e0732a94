#!/usr/bin/env bash
# Old binary against new, in one run: a speed check for refactors that must not change speed.
#
#   bash bench/compare.sh OLD_BIN NEW_BIN
#
# bench/ab.sh on its cases phi-9 (the tutorial's 9-token prompt, --bos, table + heatmap PNG),
# phi-512 (a 512-token prompt, --bos, table only) and smollm2 (SmolLM2-135M-Instruct Q4_1
# GGUF, scripts/fetch_smollm2.sh; the 8-token fox prompt, JSON), alternating OLD and NEW run
# by run with the weights in the page cache; prints, per case, the median wall time of each
# binary, the ratio new/old, and the medians of the load / forward / lens timings.
#
# Environment: COMPARE_RUNS (default 5) rounds of the short cases, COMPARE_LONG_RUNS (default 3)
# rounds of phi-512; LOGITLENS_CACHE and LOGITLENS_VENV as for bench/run.sh.
# Not part of `cargo test` or CI.
set -euo pipefail

AB_CASES="phi-9 phi-512 smollm2" AB_ROUNDS="${COMPARE_RUNS:-5}" \
  AB_LONG_ROUNDS="${COMPARE_LONG_RUNS:-3}" exec bash "$(dirname "${BASH_SOURCE[0]}")/ab.sh" "$@"
