#!/usr/bin/env bash
# collect-libs.sh DEST BINARY...: copies the shared libraries the binaries need into DEST, except
# the C library's own and the CUDA driver's (the runtime image has those), so the runtime stage
# needs no -dev packages and no guessing of library package names.
set -euo pipefail
dest=$1; shift
mkdir -p "$dest"
for binary in "$@"; do
  ldd "$binary" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libcuda.so*) ;;
      *) cp -Ln "$lib" "$dest/" ;;
    esac
  done
done
