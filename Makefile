# DTM — the two commands (see README.md): `make run` and `make test`; `make` builds build/dtm.
BUILD ?= build
MESON_OPTS ?= -Dwerror=true

.PHONY: all deps build run test bench fuzz format clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) $(MESON_OPTS)
	@ninja -C $(BUILD)

run: build
	@scripts/run.sh

test:
	@scripts/test.sh

bench:
	@scripts/deps.sh bench
	@bench/ingest_realtime/run.sh
	@bench/ingest_batch/run.sh
	@bench/ingest_batch/large.sh
	@bench/query/run.sh
	@bench/page/run.sh

# libFuzzer (T2.3): every driver of fuzz/ (JSON, NDJSON, CSV, XML, query string, statistics
# parameters, dataset definitions, dtm.conf) for FUZZ_SECONDS each (default 300), in parallel,
# from the committed seeds, in build-fuzz (clang, ASan + UBSan, coverage-instrumented engine).
# New inputs go to build-fuzz/corpus/NAME, crashes to build-fuzz/crash-NAME-*; e.g.
#   make fuzz FUZZ_SECONDS=60            make fuzz FUZZ_DRIVERS="xml json"
FUZZ_SECONDS ?= 300
fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) $(if $(FUZZ_DRIVERS),FUZZ_DRIVERS="$(FUZZ_DRIVERS)") fuzz/run.sh

format:
	@clang-format -i $$(git ls-files 'src/*.[ch]' 'tests/*.[ch]' 'fuzz/*.[ch]')

clean:
	rm -rf build build-asan build-release build-fuzz
