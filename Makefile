# ember — one entry point.
#
#   make            build libember (static + shared) and idlc
#   make test       build and run every test suite
#   make demo       run the example game cluster end to end
#   make bench      run the benchmarks against the raw libevent baseline
#   make install    install idlc, libember, headers and ember.pc
#   make uninstall  remove what make install put (same PREFIX and DESTDIR)
#
# Each part of the tree keeps its rules in mk/<part>.mk; this file holds what
# they share. A part adds its test target to TEST_TARGETS.

# ---- the packages first --------------------------------------------------
# The mk files read the libraries' flags from pkg-config when make parses
# them, so nothing that needs a package may be parsed before the package is
# there. The make you start therefore does one thing: it installs what its
# goals need (scripts/deps.sh, once, even under -j) and then runs the same
# goals in a second make, which parses with every package in place.
ifeq ($(EMBER_DEPS_DONE),)
EMBER_GOALS  := $(or $(MAKECMDGOALS),all)
NODEPS_GOALS := clean uninstall deps deps-build deps-test deps-bench
TEST_GOALS   := test test-% check-asan check-valgrind fuzz fuzz-% soak
BENCH_GOALS  := bench bench-%
MIXED_GOALS  := demo-mixed
DEPS_GROUPS  := $(strip \
    $(if $(filter $(TEST_GOALS),$(EMBER_GOALS)),test) \
    $(if $(filter $(BENCH_GOALS),$(EMBER_GOALS)),bench) \
    $(if $(filter $(MIXED_GOALS),$(EMBER_GOALS)),mixed) \
    $(if $(filter-out $(NODEPS_GOALS) $(TEST_GOALS) $(BENCH_GOALS) $(MIXED_GOALS),$(EMBER_GOALS)),build))
endif

ifneq ($(and $(if $(EMBER_DEPS_DONE),,1),$(DEPS_GROUPS)),)
.PHONY: $(EMBER_GOALS) deps-then-make
$(EMBER_GOALS): deps-then-make
	@:
deps-then-make:
	@scripts/deps.sh --quiet $(DEPS_GROUPS)
	@$(MAKE) --no-print-directory EMBER_DEPS_DONE=1 $(MAKECMDGOALS)
else
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

.PHONY: all deps deps-build deps-test deps-bench test demo bench install clean
all: lib idlc

# Installs what is missing (apt-get when root, a clear message otherwise):
# `deps` everything, `deps-build` what building and the demo need,
# `deps-test` what the test suites need, `deps-bench` the benchmarks' tools.
# Every other goal runs the right one of these first (above).
deps:
	@scripts/deps.sh build test bench
deps-build deps-test deps-bench: deps-%:
	@scripts/deps.sh $*

include mk/runtime.mk
include mk/idlc.mk
-include mk/gen.mk
-include mk/tests.mk
-include mk/examples.mk
-include mk/bench.mk
-include mk/fuzz.mk
-include mk/install.mk
-include mk/hello.mk
-include mk/pb.mk
-include mk/wire.mk

test: all $(TEST_TARGETS)
	@echo "make test: all suites passed"

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)

endif
