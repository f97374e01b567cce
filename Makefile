# chatd — build, run and test. `make run` and `make test` set up what is
# missing (scripts/deps.sh), so they work on a fresh Debian 12 machine.

BUILD   ?= build
SAN     ?= 0
PYTHON  ?= /usr/bin/python3
PYTEST_ARGS ?=

PKGS    := libuv jansson libjwt libsodium libcrypto sqlite3 libpq
CC      ?= cc
CFLAGS  ?= -O2 -g
override CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -fno-strict-aliasing -pthread -Isrc -I$(BUILD)/gen
LDLIBS  += -lhttp_parser -lpthread -lm
ifeq ($(SAN),1)
override CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
override LDFLAGS += -fsanitize=address,undefined
endif

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
override CFLAGS  += -DCHATD_VERSION='"$(VERSION)"'

# pkg-config runs only once the dependencies are there (deps.sh installs them).
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

SRCS      := $(shell find src -name '*.c' | sort)
LIB_SRCS  := $(filter-out src/main.c,$(SRCS))
MIGRATIONS := $(sort $(wildcard src/store/migrations/*/*.sql))
GEN_SRCS  := $(BUILD)/gen/migrations_data.c
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/migrations_data.o
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
# What the unit tests share (tests/unit/support/) is linked into each of them.
UNIT_SUPPORT_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(sort $(wildcard tests/unit/support/*.c)))

.PHONY: all deps build run test unit integration asan format format-check clean \
        bench bench-rest image-test help fuzz fuzz-build fuzz-deps
.DEFAULT_GOAL := all

all: $(BUILD)/chatd $(BUILD)/chatd-bench

help:
	@echo "make run         build and serve on :3000 with SQLite in ./data"
	@echo "make test        unit + integration tests (SQLite and PostgreSQL)"
	@echo "make asan        the same tests under ASan + UBSan"
	@echo "make bench       WebSocket fan-out: chatd-bench scenarios, peers, plots (docs/BENCHMARKS.md)"
	@echo "make bench-rest  REST posting throughput (docs/BENCHMARKS.md)"
	@echo "make image-test  build the container image with podman and try it"
	@echo "make fuzz        each libFuzzer target for FUZZ_SECONDS (default 60) (fuzz/README.md)"

deps:
	@scripts/deps.sh

build: deps
	@$(MAKE) --no-print-directory $(BUILD)/chatd $(BUILD)/chatd-bench

run: build
	@mkdir -p data
	$(BUILD)/chatd

$(BUILD)/gen/migrations_data.c: $(MIGRATIONS) scripts/embed_migrations.sh
	@mkdir -p $(dir $@)
	scripts/embed_migrations.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libchatd.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/chatd: $(BUILD)/obj/src/main.o $(BUILD)/libchatd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

# chatd-bench, the load generator for operators (bench/chatd_bench/, --help).
BENCH_SRCS := $(sort $(wildcard bench/chatd_bench/*.c))
$(BUILD)/chatd-bench: $(BENCH_SRCS:%.c=$(BUILD)/obj/%.o)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(UNIT_SUPPORT_OBJS) $(wildcard tests/unit/support/*.h) \
    $(BUILD)/libchatd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< $(UNIT_SUPPORT_OBJS) $(BUILD)/libchatd.a \
	    $(PKG_LIBS) -lcmocka $(LDLIBS)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

integration: $(BUILD)/chatd $(BUILD)/chatd-bench
	CHATD_BIN=$(abspath $(BUILD)/chatd) CHATD_BENCH_BIN=$(abspath $(BUILD)/chatd-bench) $(PYTHON) -m pytest -q tests/integration $(PYTEST_ARGS)

test: deps
	@$(MAKE) --no-print-directory $(BUILD)/chatd
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration

# A separate build in build/asan that the suites run against (CHATD_BIN);
# LeakSanitizer checks every chatd exit, and the test harness fails a test
# whose server exits non-zero or logs a sanitizer report.
ASAN_OPTIONS  ?= detect_leaks=1:detect_stack_use_after_return=1
UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
asan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 CFLAGS="-O1 -g" build/asan/chatd
	@nm -D build/asan/chatd | grep -q ' U __asan_init' || \
	  { echo "asan: build/asan/chatd is not built with ASan (stale objects? make clean)" >&2; exit 1; }
	@ASAN_OPTIONS='$(ASAN_OPTIONS)' UBSAN_OPTIONS='$(UBSAN_OPTIONS)' \
	  $(MAKE) --no-print-directory BUILD=build/asan SAN=1 CFLAGS="-O1 -g" unit integration

bench: build
	bench/run_bench.sh

bench-rest: build
	bench/rest_bench.sh

image-test: deps
	scripts/image_test.sh

format:
	clang-format -i $(SRCS) $(shell find src tests fuzz bench -name '*.h' -o -name '*.c' 2>/dev/null | grep -v '^src/.*\.c$$')

format-check:
	clang-format --dry-run -Werror $(shell find src tests fuzz bench -name '*.[ch]' 2>/dev/null)

clean:
	rm -rf build

# ---- fuzzing: libFuzzer targets built with clang (fuzz/README.md) ----------
# A target is fuzz/NAME_fuzz.c with seeds in fuzz/corpus/NAME/ (and, if it
# helps, a libFuzzer dictionary fuzz/NAME.dict), plus one line below:
# FUZZ_NAME := the .c files it needs, then any libraries.
FUZZ_ws_frame := src/net/ws_frame.c src/core/utf8.c -lwslay -lcrypto
FUZZ_config := src/core/config.c src/core/log.c src/core/buf.c src/core/timeutil.c
FUZZ_jwt := src/auth/token.c -ljwt -ljansson -lcrypto
FUZZ_client_event := src/chat/client_event.c src/chat/post.c src/core/validate.c src/core/utf8.c \
    src/core/ratelimit.c src/core/timeutil.c -ljansson -lpthread
# The whole server in process (fuzz/common/inproc.c counts store jobs by
# wrapping store_submit).
FUZZ_SERVER := $(LIB_SRCS) $(GEN_SRCS) fuzz/common/inproc.c fuzz/common/http_check.c \
    $(PKG_LIBS) -lhttp_parser -lpthread -lm -Wl,--wrap=store_submit
FUZZ_http_request := $(FUZZ_SERVER)
FUZZ_ws_session := $(FUZZ_SERVER)

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   ?=
# Only the fuzz targets need these, so `make test` does not install them.
FUZZ_PACKAGES := clang libclang-rt-14-dev libwslay-dev
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS   = -O1 -g $(filter-out -O% -g -fsanitize=%,$(CFLAGS)) $(FUZZ_SAN)
FUZZ_TARGETS := $(sort $(patsubst fuzz/%_fuzz.c,%,$(wildcard fuzz/*_fuzz.c)))
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%_fuzz)

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) -MMD -MP -c $< -o $@

define fuzz_target_rule
$(BUILD)/fuzz/$(1)_fuzz: $(BUILD)/fuzz/obj/fuzz/$(1)_fuzz.o \
    $(patsubst %.c,$(BUILD)/fuzz/obj/%.o,$(filter %.c,$(FUZZ_$(1))))
	$$(FUZZ_CC) $$(FUZZ_SAN) -fsanitize=fuzzer -o $$@ $$(filter %.o,$$^) \
	    $(filter-out %.c,$(FUZZ_$(1)))
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_target_rule,$(t))))

fuzz-deps:
	@CHATD_DEPS_EXTRA="$(FUZZ_PACKAGES)" scripts/deps.sh

fuzz-build: fuzz-deps
	@$(MAKE) --no-print-directory $(FUZZ_BINS)

# New inputs go to $(BUILD)/fuzz/work/NAME (fuzz/corpus stays as committed);
# a crash leaves its input in $(BUILD)/fuzz/artifacts and fails the run.
fuzz: fuzz-build
	@failed=; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(BUILD)/fuzz/work/$$t $(BUILD)/fuzz/artifacts; \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  dict=; [ -f fuzz/$$t.dict ] && dict=-dict=fuzz/$$t.dict; \
	  $(BUILD)/fuzz/$${t}_fuzz -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(BUILD)/fuzz/artifacts/$$t- $$dict $(FUZZ_FLAGS) \
	    $(BUILD)/fuzz/work/$$t fuzz/corpus/$$t || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failures in:$$failed"; exit 1; fi

-include $(shell find $(BUILD)/obj $(BUILD)/fuzz/obj -name '*.d' 2>/dev/null)
