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

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
