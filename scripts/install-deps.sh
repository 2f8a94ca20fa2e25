#!/usr/bin/env bash
# Installs every Debian package amsg needs to build, test and benchmark.
# Idempotent: installs only what is missing (apt-get update runs first when it must install).
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  libasio-dev libspdlog-dev libfmt-dev libcli11-dev
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
  libucx-dev ucx-utils
  libgtest-dev libgmock-dev
  prometheus-cpp-dev prometheus doxygen
  clang-14 libclang-rt-14-dev
  libcurl4-openssl-dev nlohmann-json3-dev etcd-server etcd-client
  iproute2 nftables
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "install-deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
