#!/usr/bin/env bash
# Installs amsg into a temporary prefix and builds and runs consumers against it,
# as another project would: examples/ as a CMake project of its own
# (find_package(amsg 0.2 CONFIG REQUIRED)) and a pkg-config build of the same
# sources. Usage: scripts/check-install.sh [static|shared]   (default: static)
#  static: installs the dev build (build/dev, built by scripts/run-tests.sh or here)
#  shared: configures build/shared (-DBUILD_SHARED_LIBS=ON, no tests; clang 14
#          at -O0 -g0: it checks packaging and symbol visibility, not speed, and
#          builds fastest so; the consumers below use gcc, so the installed
#          libraries are also used across compilers), installs, and also runs
#          the installed `amsg demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-static}
scripts/install-deps.sh
case "$kind" in
  static)
    build=build/dev
    cmake --preset dev >/dev/null
    cmake --build --preset dev >/dev/null ;;
  shared)
    build=build/shared
    cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS_NONE="-O0 -g0" -DBUILD_SHARED_LIBS=ON \
      -DAMSG_WERROR=ON -DAMSG_BUILD_EXAMPLES=OFF -DAMSG_BUILD_TESTS=OFF >/dev/null
    cmake --build "$build" >/dev/null ;;
  *) echo "usage: $0 [static|shared]" >&2; exit 2 ;;
esac

work=$(mktemp -d /tmp/amsg-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
echo "installed into $prefix:"
(cd "$prefix" && find . -type f -o -type l | sort | grep -v '^./include/amsg/' | sed 's/^/  /')

echo "== CMake consumer (examples/ on its own) (at ${SECONDS} s) =="
# -O0 -g0 for every consumer: they check packaging, not speed, and build fastest so
cmake -S examples -B "$work/cmake-consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=None \
  -DCMAKE_CXX_FLAGS_NONE="-O0 -g0"
cmake --build "$work/cmake-consumer"
"$work/cmake-consumer/amsg_seed_usage" >/dev/null
"$work/cmake-consumer/amsg_leader_worker" 2>/dev/null

echo "== pkg-config consumer (at ${SECONDS} s) =="
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
echo "amsg $(pkg-config --modversion amsg), amsg-net $(pkg-config --modversion amsg-net)"
rpath=()
# shellcheck disable=SC2054  # one linker argument: its commas are meant
[ "$kind" = shared ] && rpath=(-Wl,-rpath,"$prefix/lib")
# shellcheck disable=SC2046  # pkg-config output is meant to split into words
g++ -std=c++20 -O0 examples/seed_usage.cpp -o "$work/pc_seed_usage" $(pkg-config --cflags --libs amsg) "${rpath[@]}"
# shellcheck disable=SC2046
g++ -std=c++20 -O0 examples/leader_worker.cpp -o "$work/pc_leader_worker" $(pkg-config --cflags --libs amsg-net) "${rpath[@]}"
"$work/pc_seed_usage" >/dev/null
"$work/pc_leader_worker" tcp://127.0.0.1:0 2>/dev/null

if [ "$kind" = static ]; then
  echo "== add_subdirectory consumer (amsg as a subproject: no tests, tools or install rules) (at ${SECONDS} s) =="
  mkdir -p "$work/sub"
  cat > "$work/sub/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.25)
project(amsg_subproject_consumer LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 20)
add_subdirectory("$PWD" amsg)
foreach(t amsg_tests amsg_cli amsg_seed_usage)
  if(TARGET \${t})
    message(FATAL_ERROR "\${t} is built although amsg is not the top-level project")
  endif()
endforeach()
add_executable(leader_worker "$PWD/examples/leader_worker.cpp")
target_link_libraries(leader_worker PRIVATE amsg::net)
CMAKE
  # clang, -O0 -g0: this checks how amsg behaves as a subproject, not its speed (and builds fastest so)
  cmake -S "$work/sub" -B "$work/sub/build" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=None \
    -DCMAKE_CXX_FLAGS_NONE="-O0 -g0" \
    >/dev/null
  cmake --build "$work/sub/build" --target leader_worker >/dev/null  # and what it links, nothing more
  "$work/sub/build/leader_worker" 2>/dev/null
fi

if [ "$kind" = shared ]; then
  echo "== installed amsg command, shared libraries (at ${SECONDS} s) =="
  ldd "$prefix/bin/amsg" | grep -E 'libamsg' | sed 's/^/  /'
  "$prefix/bin/amsg" --version
  "$prefix/bin/amsg" demo --messages 2000 --no-progress
fi
echo "check-install ($kind): ok (${SECONDS} s)"
