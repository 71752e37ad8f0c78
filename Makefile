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

format:
	@clang-format -i $$(git ls-files 'src/*.[ch]' 'tests/*.[ch]' 'fuzz/*.[ch]')

clean:
	rm -rf build build-asan build-release
