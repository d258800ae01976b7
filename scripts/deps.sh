#!/usr/bin/env bash
# Installs what building and testing Sigillum needs on Debian/Ubuntu, skipping what is present.
# Used by scripts/test.sh and .ci/run; safe to run again.
set -euo pipefail

need_apt=()
command -v softhsm2-util >/dev/null || need_apt+=(softhsm2)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v pip3 >/dev/null || command -v pip >/dev/null || need_apt+=(python3-pip)
command -v pdftotext >/dev/null || need_apt+=(poppler-utils)
command -v qpdf >/dev/null || need_apt+=(qpdf)
command -v haproxy >/dev/null || need_apt+=(haproxy)
# Noto Sans CJK: the server's default fallback face for Chinese, Japanese and Korean text on PDF
# pages (also the production recommendation; SIGILLUM_PDF_FONTS names other files).
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || need_apt+=(fonts-noto-cjk)
# The in-process WAF: libmodsecurity 3 (headers + pkg-config file) and the OWASP Core Rule Set.
{ command -v pkg-config >/dev/null && pkg-config --exists modsecurity; } || need_apt+=(pkg-config libmodsecurity-dev)
[ -d /usr/share/modsecurity-crs/rules ] || need_apt+=(modsecurity-crs)
# The browser tests: Debian's Chromium and Node.js (playwright-core comes from npm below).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# PostgreSQL's Debian package starts a cluster of its own; the tests use a private one instead.

if ! python3 -c 'import moto.server, boto3, flask' >/dev/null 2>&1; then
  echo "==> pip install moto[server] (S3-compatible server for the S3 tests)"
  python3 -m pip install -q 'moto[server]==5.*' 2>&1 | grep -v "Running pip as the 'root'" || true
fi

if ! python3 -c 'import aiosmtpd, openapi_spec_validator, sectxt' >/dev/null 2>&1; then
  echo "==> pip install aiosmtpd openapi-spec-validator sectxt (SMTP capture; OpenAPI and security.txt validators)"
  python3 -m pip install -q 'aiosmtpd==1.4.*' 'openapi-spec-validator==0.7.*' 'sectxt==0.9.*' 2>&1 | grep -v "Running pip as the 'root'" || true
fi

if ! command -v pyhanko >/dev/null 2>&1 || ! pyhanko sign adesverify --help >/dev/null 2>&1; then
  echo "==> pip install pyHanko + pyhanko-cli (independent PAdES validator)"
  python3 -m pip install -q 'pyHanko==0.38.*' 'pyhanko-cli' 2>&1 | grep -v "Running pip as the 'root'" || true
fi
command -v openssl >/dev/null || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"; $SUDO apt-get install -y -qq openssl >/dev/null; }

if [ ! -d "$(dirname "$0")/../e2e/node_modules/playwright-core" ]; then
  echo "==> npm ci (playwright-core for the browser tests)"
  (cd "$(dirname "$0")/../e2e" && npm ci --no-audit --no-fund --loglevel=error)
fi
