# ember — one entry point.
#
#   make            build libember (static + shared) and idlc
#   make test       build and run every test suite
#   make demo       run the example game cluster end to end
#   make bench      run the benchmarks against the raw libevent baseline
#   make install    install idlc, libember, headers and ember.pc
#
# Each part of the tree keeps its rules in mk/<part>.mk; this file holds what
# they share. A part adds its test target to TEST_TARGETS.

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
B       := build

EMBER_VERSION := 0.1.0
EMBER_SOVER   := 0

WARN    := -Wall -Wextra -Wpedantic -Werror
CSTD    := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
OPT     ?= -O2 -g
SAN     ?=
CFLAGS_ALL = $(CSTD) $(WARN) $(OPT) $(SAN) -fPIC -MMD -MP $(CFLAGS)

EVENT_CFLAGS := $(shell pkg-config --cflags libevent 2>/dev/null)
EVENT_LIBS   := $(shell pkg-config --libs libevent 2>/dev/null)

TEST_TARGETS :=

# What every part links against and generates with.
IDLC        := $(B)/bin/idlc
LIBEMBER_A  := $(B)/lib/libember.a
LIBEMBER_SO := $(B)/lib/libember.so
EMBER_INC   := -Iruntime/include

.PHONY: all deps deps-build deps-test test demo bench install clean
all: deps-build lib idlc

# Installs what is missing (apt-get when root, a clear message otherwise):
# `deps` everything, `deps-build` what building and the demo need,
# `deps-test` what the test suites need. Each is a cheap check first and runs
# the installer only when something is missing.
deps: deps-test
deps-build:
	@scripts/deps.sh --quiet build
deps-test:
	@scripts/deps.sh --quiet test

include mk/runtime.mk
include mk/idlc.mk
-include mk/gen.mk
-include mk/tests.mk
-include mk/examples.mk
-include mk/bench.mk
-include mk/fuzz.mk
-include mk/install.mk
-include mk/hello.mk

test: deps-test all $(TEST_TARGETS)
	@echo "make test: all suites passed"

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
