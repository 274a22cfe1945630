# Tsubame build.  `make` builds bin/; `make run` and `make test` are the two commands
# a newcomer needs (README.md).  Test builds use AddressSanitizer + UBSan in build/asan.

CC      ?= cc
PKGS    := libevent libevent_openssl openssl libcares
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
ifeq ($(CI),true)
WARN    += -Werror
endif
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c17 -D_GNU_SOURCE $(WARN) -Isrc $(PKG_CFLAGS) $(CFLAGS) $(EXTRA_CFLAGS)
LDLIBS  := $(PKG_LIBS) -lcrypt

BUILD   ?= build/release
MAINS   := src/master/main.c src/ctl/main.c
SRCS    := $(filter-out $(MAINS),$(sort $(wildcard src/*/*.c)))
OBJS    := $(SRCS:%.c=$(BUILD)/%.o)
DEPS    := $(OBJS:.o=.d) $(MAINS:%.c=$(BUILD)/%.d)
BINDIR  := $(BUILD)/bin

.PHONY: all run test unit integration fuzz fuzz-smoke bench clean deps docs asan check-docs

all: $(BINDIR)/tsubamed $(BINDIR)/tsubamectl
	@mkdir -p bin && ln -sf ../$(BINDIR)/tsubamed bin/tsubamed && ln -sf ../$(BINDIR)/tsubamectl bin/tsubamectl

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libtsubame.a: $(OBJS)
	ar rcs $@ $^

$(BINDIR)/tsubamed: $(BUILD)/src/master/main.o $(BUILD)/libtsubame.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) $(EXTRA_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BINDIR)/tsubamectl: $(BUILD)/src/ctl/main.o $(BUILD)/libtsubame.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) $(EXTRA_LDFLAGS) -o $@ $^ $(LDLIBS)

-include $(DEPS)

deps:
	@./scripts/install-deps.sh $(DEPS_FOR)

run:
	@./scripts/install-deps.sh run
	@$(MAKE) --no-print-directory all
	@./scripts/run-example.sh

# --- tests -------------------------------------------------------------------
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_BUILD := build/asan

asan:
	@$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) CFLAGS="$(SAN_FLAGS)" EXTRA_LDFLAGS="$(SAN_FLAGS)" \
		$(ASAN_BUILD)/bin/tsubamed $(ASAN_BUILD)/bin/tsubamectl $(ASAN_BUILD)/libtsubame.a

UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(ASAN_BUILD)/tests/%)

$(ASAN_BUILD)/tests/%: tests/unit/%.c $(ASAN_BUILD)/libtsubame.a
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -D_GNU_SOURCE $(WARN) -Isrc -Itests/unit $(PKG_CFLAGS) $(SAN_FLAGS) -o $@ $< $(ASAN_BUILD)/libtsubame.a $(LDLIBS) -lcmocka

unit: asan
	@$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) CFLAGS="$(SAN_FLAGS)" $(UNIT_BINS)
	@./scripts/run-unit.sh $(UNIT_BINS)

integration: asan
	TSUBAME_BIN=$(CURDIR)/$(ASAN_BUILD)/bin ./scripts/run-integration.sh

test:
	@./scripts/install-deps.sh test
	@$(MAKE) --no-print-directory check-docs
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory integration

# --- fuzzing (clang libFuzzer) ------------------------------------------------
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BUILD := build/fuzz
FUZZ_FLAGS := -O1 -g -fsanitize=fuzzer-no-link,address,undefined
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/bin/%)

fuzz-lib:
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang CFLAGS="$(FUZZ_FLAGS)" $(FUZZ_BUILD)/libtsubame.a

$(FUZZ_BUILD)/bin/%: tests/fuzz/%.c fuzz-lib
	@mkdir -p $(dir $@)
	clang -std=c17 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) -O1 -g -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_BUILD)/libtsubame.a $(LDLIBS)

fuzz-smoke: $(FUZZ_BINS)
	@./scripts/run-fuzz.sh 20 $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@./scripts/run-fuzz.sh $${FUZZ_SECONDS:-600} $(FUZZ_BINS)

bench: all
	@./scripts/install-deps.sh bench
	@./bench/run.sh

docs: all
	$(BINDIR)/tsubamed -D > docs/configuration.md

check-docs: all
	@$(BINDIR)/tsubamed -D | cmp -s - docs/configuration.md || { echo "docs/configuration.md is stale: run make docs"; exit 1; }

clean:
	rm -rf build bin
