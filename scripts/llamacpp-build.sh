# Sourced by the llama.cpp comparison scripts: builds llama.cpp's llama-bench and its static
# libraries (CPU, native) from the vendored source in the PyPI sdist of llama-cpp-python, pinned by
# LLAMA_CPP_PYTHON, with cmake from PyPI, outside the repository in a cache later runs reuse.
# Sets PIN, CACHE, bench (the llama-bench binary), LLAMA_SRC and LLAMA_BUILD.
PIN=${LLAMA_CPP_PYTHON:-0.3.36}
CACHE=${CHIMERA_LLAMACPP:-$HOME/.cache/chimera-llamacpp/$PIN}
LLAMA_SRC="$CACHE/llama_cpp_python-$PIN/vendor/llama.cpp"
LLAMA_BUILD="$CACHE/build"
bench="$CACHE/build/bin/llama-bench"

if [ ! -x "$bench" ]; then
  echo "building llama-bench (llama-cpp-python $PIN) in $CACHE" >&2
  mkdir -p "$CACHE"
  [ -d "$CACHE/py/cmake" ] || python3 -m pip install -q --target "$CACHE/py" cmake
  # the sdist file itself (pip download would build its metadata, and with it cmake from source)
  python3 - "$PIN" "$CACHE" <<'PY'
import json, sys, urllib.request
pin, cache = sys.argv[1], sys.argv[2]
# PyPI's simple index (the JSON form), which mirrors and proxies serve
req = urllib.request.Request("https://pypi.org/simple/llama-cpp-python/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
files = json.load(urllib.request.urlopen(req, timeout=120))["files"]
url = next(f["url"] for f in files if f["filename"] == f"llama_cpp_python-{pin}.tar.gz")
urllib.request.urlretrieve(url, f"{cache}/llama_cpp_python-{pin}.tar.gz")
PY
  tar -xzf "$CACHE/llama_cpp_python-$PIN.tar.gz" -C "$CACHE"
  cmake="$CACHE/py/bin/cmake"
  export PYTHONPATH="$CACHE/py${PYTHONPATH:+:$PYTHONPATH}"
  "$cmake" -S "$LLAMA_SRC" -B "$CACHE/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >&2
  "$cmake" --build "$CACHE/build" --target llama-bench -j"$(nproc)" >&2
fi

