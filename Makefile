# moonloop: a thin wrapper over CMake. `make demo` and `make test` are the two commands a
# newcomer needs; both install missing Debian packages first (see vendor/packages.txt).
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_TYPE ?= RelWithDebInfo

.PHONY: all deps build demo compare test asan bench fuzz clean help

all: build

help:
	@echo "make demo    install deps, build, run the demo on the offline mock server"
	@echo "make test    install deps, build, run the whole test suite (ctest)"
	@echo "make compare ASI vs CoT Self-Instruct on the same sources, the paper's table"
	@echo "make asan    the same tests in an AddressSanitizer + UBSan build ($(ASAN_BUILD)/)"
	@echo "make bench   benchmarks against nginx and curl --parallel (tests/bench/)"
	@echo "make deps    install missing Debian packages (root), or print the apt-get command"
	@echo "make build   configure and build into $(BUILD)/"

deps:
	@scripts/deps.sh vendor/packages.txt

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(CMAKE_TYPE)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	@scripts/demo.sh $(BUILD)/moonloop

compare: build
	$(BUILD)/moonloop run --offline recipes/compare.lua

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DML_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 900

bench: build
	@tests/bench/run.sh $(BUILD)/moonloop

# Hardening (see README, For developers): every libFuzzer target for FUZZ_SECONDS from its
# seed corpus (CI: 30 s each), and the integration and Lua tests under valgrind
# (VALGRIND_TESTS: a regex of test names, e.g. 'mock_server|lua.text').
FUZZ_BUILD     ?= build-fuzz
FUZZ_SECONDS   ?= 30
VALGRIND_TESTS ?= .
.PHONY: fuzz-ci valgrind
fuzz-ci:
	@scripts/deps.sh tests/fuzz/packages.txt
	tests/fuzz/run_ci.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

valgrind: build
	@scripts/deps.sh tests/valgrind/packages.txt
	tests/valgrind/run.sh $(BUILD) '$(VALGRIND_TESTS)'

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
