# Sourced by the llama.cpp comparison scripts: builds llama.cpp's llama-bench and its static
# libraries (CPU, native) from the vendored source in the PyPI sdist of llama-cpp-python, pinned by
# LLAMA_CPP_PYTHON, with cmake from pip, outside the repository in a cache later runs reuse. Every
# download goes through pip and its configuration. Sets PIN, CACHE, bench (the llama-bench binary),
# LLAMA_SRC, LLAMA_BUILD and the functions cmake and llamacpp_source.
PIN=${LLAMA_CPP_PYTHON:-0.3.36}
CACHE=${CHIMERA_LLAMACPP:-$HOME/.cache/chimera-llamacpp/$PIN}
LLAMA_SRC="$CACHE/llama_cpp_python-$PIN/vendor/llama.cpp"
LLAMA_BUILD="$CACHE/build"
bench="$CACHE/build/bin/llama-bench"
# cmake and scikit-build-core from pip; `cmake` runs it with its Python package on the path.
PYTOOLS="$CACHE/pytools"
cmake() { PYTHONPATH="$PYTOOLS${PYTHONPATH:+:$PYTHONPATH}" "$PYTOOLS/bin/cmake" "$@"; }

# The vendored llama.cpp source, fetched once into the cache.
llamacpp_source() {
  [ -d "$LLAMA_SRC" ] && return 0
  echo "fetching llama.cpp (llama-cpp-python $PIN) into $CACHE" >&2
  mkdir -p "$CACHE"
  # Everything through pip's own configuration (index, mirrors, proxies): cmake and
  # scikit-build-core (the sdist's build backend, used only to read its metadata), then the sdist.
  # One pip call into a fresh folder: a second --target install into it would skip packages.
  [ -d "$PYTOOLS/scikit_build_core" ] || python3 -m pip install -q --target "$PYTOOLS" cmake scikit-build-core
  PYTHONPATH="$PYTOOLS${PYTHONPATH:+:$PYTHONPATH}" PATH="$PYTOOLS/bin:$PATH" \
    python3 -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$CACHE" \
    "llama-cpp-python==$PIN"
  tar -xzf "$CACHE/llama_cpp_python-$PIN.tar.gz" -C "$CACHE"
}

# LLAMACPP_CPU=0: only the source (the CUDA build in gpu-check.sh builds its own).
if [ "${LLAMACPP_CPU:-1}" != 0 ] && [ ! -x "$bench" ]; then
  llamacpp_source
  echo "building llama-bench (CPU) in $CACHE/build" >&2
  cmake -S "$LLAMA_SRC" -B "$CACHE/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >&2
  cmake --build "$CACHE/build" --target llama-bench -j"$(nproc)" >&2
fi
