#!/usr/bin/env bash
# Installs the Debian packages the project needs (OpenCL headers and ICD loader for
# the generated C++ host; Chromium for the report rendering test) when missing.
set -euo pipefail
need=()
[ -f /usr/include/CL/cl.h ] || need+=(opencl-headers)
[ -e /usr/lib/x86_64-linux-gnu/libOpenCL.so ] || [ -e /usr/lib/aarch64-linux-gnu/libOpenCL.so ] || need+=(ocl-icd-opencl-dev)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "cnn2gate set-up: missing system packages: ${need[*]}" >&2
  echo "  install them as root: apt-get install -y ${need[*]}" >&2
  echo "  (emulation and the report browser test are skipped without them)" >&2
  exit 0
fi
echo "cnn2gate set-up: installing ${need[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
