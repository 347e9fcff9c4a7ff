#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer (GCC).
#
#   bash tools/sanitize.sh [pytest arguments...]     (default: the whole suite)
#
# Copies this checkout (tracked and untracked, not ignored, files: the working tree as it
# is) to a temporary directory, makes a fresh virtual environment there, installs the build
# requirements and builds fastgd with -DFASTGD_SANITIZE=ON (kernels and Cython modules
# instrumented, -fno-sanitize-recover=all: the first report aborts), installs the test extra,
# and runs pytest with the ASan runtime preloaded. Nothing is written to the checkout.
#
# Exit status: non-zero on any failing test and on ANY sanitizer report. ASan reports go to
# log files, UBSan reports to the output (pytest runs with --capture=sys, so that fd capture
# cannot swallow them); any log file, or a "runtime error:" / "ERROR: AddressSanitizer" /
# "SUMMARY: ...Sanitizer" line in the output, fails the run even if pytest exited 0. First,
# the built modules are checked to be instrumented and a canary checks that a deliberate
# heap overflow and a deliberate misaligned load abort and are seen, so that a broken set-up
# cannot pass silently. numpy, scipy, torch etc. are not instrumented (ASan only intercepts
# their malloc/free); the reports come from fastgd's C code.
#
# Environment: PYTHON (default python3); FASTGD_SANITIZE_REV=<commit> tests that commit
# (git archive) instead of the working tree; FASTGD_SANITIZE_KEEP=1 keeps the temporary
# directory (venv, build, logs) and prints where it is.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
t0=$SECONDS

command -v gcc >/dev/null || { echo "sanitize: gcc is needed" >&2; exit 2; }
libasan="$(gcc -print-file-name=libasan.so)"
libubsan="$(gcc -print-file-name=libubsan.so)"  # loaded by the modules themselves
for lib in "$libasan" "$libubsan"; do
    [[ "$lib" == /* && -e "$lib" ]] || {
        echo "sanitize: gcc has no sanitizer runtime ($lib); install libasan/libubsan" >&2
        exit 2
    }
done
libasan="$(readlink -f "$libasan")"
# Python is C, so libstdc++ is not loaded when ASan starts and its __cxa_throw interceptor
# finds no real function: the first C++ exception of any prebuilt extension (matplotlib's
# ft2font, torch) would stop the run with "CHECK failed: ... real___cxa_throw". Preloaded
# after the runtime, it is there from the start.
libstdcxx="$(readlink -f "$(gcc -print-file-name=libstdc++.so.6)")"

work="$(mktemp -d "${TMPDIR:-/tmp}/fastgd-sanitize.XXXXXX")"
if [[ "${FASTGD_SANITIZE_KEEP:-0}" == 1 ]]; then
    trap 'echo "sanitize: kept $work"' EXIT
else
    trap 'rm -rf "$work"' EXIT
fi
src="$work/src" logs="$work/logs"
mkdir -p "$src" "$logs"

if [[ -n "${FASTGD_SANITIZE_REV:-}" ]]; then
    echo "== $FASTGD_SANITIZE_REV of $root -> $src"
    git -C "$root" archive --format=tar "$FASTGD_SANITIZE_REV" | tar -xf - -C "$src"
elif git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "== working tree of $root -> $src"
    git -C "$root" ls-files -z --cached --others --exclude-standard |
        (cd "$root" && tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$src"
else
    echo "== $root -> $src"
    tar -C "$root" --exclude=./build --exclude=./.git -cf - . | tar -xf - -C "$src"
fi

echo "== venv ($("$python" --version))"
"$python" -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
python -m pip install -q --upgrade pip
# the [build-system] requirements of pyproject.toml, plus CMake and Ninja (no build isolation,
# so that the build runs in this venv with the flags below)
python - "$src/pyproject.toml" > "$work/build-requirements.txt" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
try:
    import tomllib
    print("\n".join(tomllib.loads(text)["build-system"]["requires"]))
except ImportError:  # Python 3.10: the requires list of [build-system], read plainly
    block = re.search(r"^\[build-system\].*?^requires\s*=\s*\[(.*?)\]", text, re.S | re.M)
    print("\n".join(re.findall(r'"([^"]+)"', block.group(1))))
EOF
python -m pip install -q -r "$work/build-requirements.txt" cmake ninja

echo "== build with -fsanitize=address,undefined"
cd "$src"
CC=gcc python -m pip install -v --no-build-isolation \
    -C build-dir="$work/build" \
    -C cmake.build-type=RelWithDebInfo \
    -C cmake.define.FASTGD_SANITIZE=ON \
    ".[test]" > "$work/build.log" 2>&1 || { tail -50 "$work/build.log"; exit 1; }
grep -q '^FASTGD_SANITIZE:BOOL=ON' "$work"/build/CMakeCache.txt ||
    { echo "sanitize: the CMake build did not take FASTGD_SANITIZE=ON" >&2; exit 1; }

# ASan writes its reports to files (also those of child processes whose stderr a test
# captures). GCC's libubsan ignores log_path next to ASan (libasan's exported
# __sanitizer_set_report_path interposes its own), so UBSan reports go to stderr: pytest runs
# with --capture=sys, which leaves file descriptor 2 alone, so that they reach the log even
# when the process aborts (fd capture would lose them with the process).
report_re='ERROR: AddressSanitizer|ERROR: LeakSanitizer|Sanitizer: CHECK failed|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer'
alloc_warning_re='^==[0-9]+==WARNING: AddressSanitizer failed to allocate 0x[0-9a-f]+ bytes$'
asan_opts="detect_leaks=0:abort_on_error=1:halt_on_error=1:print_summary=1"
# allocator_may_return_null: a request over ASan's maximum (1 TiB) makes numpy raise
# MemoryError, as without ASan, instead of aborting with "requested allocation size exceeds
# maximum supported size" (a NULL that fastgd failed to check would still be an ASan SEGV).
asan_opts+=":allocator_may_return_null=1:log_path=$logs/asan"
ubsan_opts="print_stacktrace=1:halt_on_error=1:abort_on_error=1"
run_sanitized() {
    env LD_PRELOAD="$libasan:$libstdcxx" ASAN_OPTIONS="$asan_opts" UBSAN_OPTIONS="$ubsan_opts" \
        "$@"
}

echo "== installed modules are instrumented"
python - <<'EOF'
import glob, importlib.util, os, subprocess, sys
pkg = os.path.dirname(importlib.util.find_spec("fastgd").origin)  # finds, does not import
modules = sorted(glob.glob(os.path.join(pkg, "*.so")))
for mod in ("_optim", "_nn"):
    if not any(os.path.basename(m).startswith(mod + ".") for m in modules):
        sys.exit(f"sanitize: no {mod} extension module in {pkg}")
for path in modules:  # every extension module of the package, whatever its name
    syms = subprocess.run(["nm", "-D", "--undefined-only", path], capture_output=True,
                          text=True, check=True).stdout
    if "__asan_report" not in syms or "__ubsan_handle" not in syms:
        sys.exit(f"sanitize: {path} is not built with ASan and UBSan")
    print("  ", path)
EOF

# what pytest will import from here is the instrumented build in the venv, not src/
run_sanitized python -c "import fastgd, sys; sys.exit(not fastgd.__file__.startswith('$work/venv/'))" ||
    { echo "sanitize: fastgd does not import from the sanitized venv" >&2; exit 1; }

echo "== canary: a heap overflow and a misaligned load must abort the run"
cat > "$work/canary.c" <<'EOF'
#include <stdlib.h>
#include <string.h>
/* the sizes come from Python, so that neither report can be decided at compile time */
int overflow(int n) { char *p = malloc(n); memset(p, 0, n); int v = p[n]; free(p); return v; }
int misaligned(int k) { static double d[2]; return (int)*(double *)((char *)d + k); }
EOF
gcc -shared -fPIC -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
    -o "$work/canary.so" "$work/canary.c"
declare -A arg=([overflow]=8 [misaligned]=1)
for fn in overflow misaligned; do
    if run_sanitized python -c "import ctypes; ctypes.CDLL('$work/canary.so').$fn(${arg[$fn]})" \
        > "$work/canary.log" 2>&1; then
        echo "sanitize: the $fn canary did not abort: the set-up does not catch reports" >&2
        exit 1
    fi
    if ! grep -sqE "$report_re" "$work/canary.log" "$logs"/*; then
        echo "sanitize: the $fn canary left no report" >&2
        exit 1
    fi
    rm -f "$logs"/*
done
echo "   caught"

echo "== python -m pytest $* (ASan + UBSan)"
t1=$SECONDS
set +e
run_sanitized python -m pytest -p no:cacheprovider --capture=sys "$@" 2>&1 |
    tee "$work/pytest.log"
status=${PIPESTATUS[0]}
set -e
echo "== pytest exit status $status ($((SECONDS - t1)) s under the sanitizers)"

# Every ASan log file fails the run, except one that holds nothing but the warnings of
# allocations refused under allocator_may_return_null (a test may ask numpy for terabytes
# to see a MemoryError).
reports=()
for f in "$logs"/*; do
    [[ -e "$f" ]] || continue
    if grep -qvE "$alloc_warning_re" "$f"; then
        reports+=("$f")
    else
        echo "== note: $(wc -l < "$f") refused allocation(s), not a report: $(head -1 "$f")"
    fi
done
if (( ${#reports[@]} )); then
    for f in "${reports[@]}"; do
        echo "---- $f"
        cat "$f"
    done
    echo "sanitize: FAILED: ${#reports[@]} sanitizer report(s) above" >&2
    exit 1
fi
if grep -qE "$report_re" "$work/pytest.log"; then
    grep -nE -A12 "$report_re" "$work/pytest.log" | head -200
    echo "sanitize: FAILED: sanitizer output in the test log" >&2
    exit 1
fi
if [[ $status -ne 0 ]]; then
    echo "sanitize: FAILED: pytest exited $status" >&2
    exit 1
fi
echo "sanitize: OK, no sanitizer report ($((SECONDS - t0)) s in all)"
