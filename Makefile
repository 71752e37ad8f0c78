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

# libFuzzer on the body decoders for FUZZ_SECONDS (default 300), starting from the committed seeds;
# new interesting inputs go to build-fuzz/corpus, crashes to build-fuzz/.
FUZZ_SECONDS ?= 300
fuzz:
	@scripts/deps.sh fuzz
	@[ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null
	@ninja -C build-fuzz src/libdtmengine.a libdtmengine.a >/dev/null 2>&1 || ninja -C build-fuzz >/dev/null
	@mkdir -p build-fuzz/corpus
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc $$(pkg-config --cflags libxml-2.0) \
	    fuzz/decode.c build-fuzz/libdtmengine.a $$(pkg-config --libs libxml-2.0 libcjson libpcre2-8 sqlite3 libcrypto libsodium inih libmicrohttpd gnutls) -lpthread -lm \
	    -o build-fuzz/fuzz-decode
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
	    fuzz/definition.c build-fuzz/libdtmengine.a $$(pkg-config --libs libxml-2.0 libcjson libpcre2-8 sqlite3 libcrypto libsodium inih libmicrohttpd gnutls) -lpthread -lm \
	    -o build-fuzz/fuzz-definition
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
	    fuzz/conf.c build-fuzz/libdtmengine.a $$(pkg-config --libs libxml-2.0 libcjson libpcre2-8 sqlite3 libcrypto libsodium inih libmicrohttpd gnutls) -lpthread -lm \
	    -o build-fuzz/fuzz-conf
	@mkdir -p build-fuzz/corpus-definition build-fuzz/corpus-conf
	cd build-fuzz && ./fuzz-decode -max_total_time=$(FUZZ_SECONDS) corpus ../fuzz/corpus/decode
	cd build-fuzz && ./fuzz-definition -max_total_time=$(FUZZ_SECONDS) corpus-definition ../src/dict/builtin
	cd build-fuzz && ./fuzz-conf -max_total_time=$(FUZZ_SECONDS) corpus-conf ../fuzz/corpus/conf

format:
	@clang-format -i $$(git ls-files 'src/*.[ch]' 'tests/*.[ch]' 'fuzz/*.[ch]')

clean:
	rm -rf build build-asan build-release
