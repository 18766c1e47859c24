#!/usr/bin/env bash
# Installs sympow's build and test dependencies from Debian 12 / Ubuntu 24.04 packages (as root).
# --build-only: what building needs, without the test tools (container images use it).
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  libabsl-dev libgrpc++-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libspdlog-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev libre2-dev nlohmann-json3-dev libopenblas-openmp-dev zlib1g-dev
  python3
)
if [ "${1:-}" != "--build-only" ]; then
  packages+=(python3-grpcio python3-numpy python3-pytest python3-regex python3-torch python3-yaml nginx prometheus)
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "sympow: all ${#packages[@]} dependencies are installed"
  exit 0
fi
echo "sympow: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
