# Hardening: libFuzzer targets, fuzz regression replays, sanitizer and
# valgrind runs of the whole test suite (tests/fuzz, docs/security.md).
#
#   make fuzz [FUZZ_SECS=60] [FUZZ_TARGETS="fuzz_codec ..."]
#                     build every libFuzzer target (clang, ASan+UBSan) into
#                     $(FUZZ_B) and run each for FUZZ_SECS seconds; any crash,
#                     leak, timeout (>10 s) or OOM (>2 GiB) fails.
#   make fuzz-build   only build them
#   make test-fuzz-regress
#                     replay tests/fuzz/<target>/regress/ and the seed corpora
#                     through plain (non-libFuzzer) builds of the targets; part
#                     of `make test`
#   make check-asan   the whole `make test` in build/asan with ASan + UBSan
#   make check-valgrind
#                     the whole `make test` in build/valgrind, every test binary
#                     run under memcheck through $(RUNNER)
#   Both set EMBER_TEST_SLOW (3 and 20), which the suites stretch their
#   deadlines by (tests/common/loop.h).
#
# The runtime and idlc sources are compiled straight into the fuzz binaries
# with the fuzz flags; nothing here depends on how mk/runtime.mk builds.

FUZZ_B      ?= build/fuzz
FUZZ_CC     ?= clang
FUZZ_SECS   ?= 60
FUZZ_RUN_FLAGS ?= -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
                  -print_final_stats=1

FUZZ_SAN_CC := -fsanitize=fuzzer-no-link,address,undefined \
               -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_SAN_LD := -fsanitize=fuzzer,address,undefined
# Everything, the runtime, idlc and the flex/bison outputs included, is
# held to the same warnings as the normal build.
FUZZ_CFLAGS := $(CSTD) -g -O1 $(FUZZ_SAN_CC) -DEMBER_FUZZING=1 $(SSL_CFLAGS) \
               $(EVENT_CFLAGS) $(WARN)

# ---- sources the targets need ----------------------------------------

FUZZ_RT_SRCS   := $(sort $(wildcard runtime/src/*.c))
FUZZ_RT_INC    := -Iruntime/include -Iruntime/src
FUZZ_RT_OBJS   := $(patsubst runtime/src/%.c,$(FUZZ_B)/obj/runtime/%.o,$(FUZZ_RT_SRCS))
# Linked as an archive so a target pulls in only the objects it needs.
FUZZ_RT_LIB    := $(FUZZ_B)/lib/libember-fuzz.a

# idlc front end: every idlc/*.c but main.c, plus the flex/bison outputs,
# regenerated into $(FUZZ_B)/idlc-gen (never into the source tree).
FUZZ_IDLC_Y    := idlc/parser.y
FUZZ_IDLC_L    := idlc/lexer.l
FUZZ_IDLC_SRCS := $(filter-out idlc/main.c,$(sort $(wildcard idlc/*.c)))
FUZZ_IDLC_GEN  := $(FUZZ_B)/idlc-gen
FUZZ_IDLC_OBJS := $(patsubst idlc/%.c,$(FUZZ_B)/obj/idlc/%.o,$(FUZZ_IDLC_SRCS)) \
                  $(FUZZ_B)/obj/idlc/parser.o $(FUZZ_B)/obj/idlc/lexer.o
FUZZ_IDLC_INC  := -Iidlc -I$(FUZZ_IDLC_GEN)

# ---- the targets -------------------------------------------------------

FUZZ_ALL     := fuzz_codec fuzz_frames fuzz_generated fuzz_idlc fuzz_pb
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_BINS    := $(addprefix $(FUZZ_B)/bin/,$(FUZZ_TARGETS))

.PHONY: fuzz fuzz-build test-fuzz-regress check-asan check-valgrind \
        $(addprefix fuzz-run-,$(FUZZ_ALL))

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@$(MAKE) --no-print-directory $(addprefix fuzz-run-,$(FUZZ_TARGETS))
	@echo "fuzz: every target ran $(FUZZ_SECS) s without a finding: $(FUZZ_TARGETS)"

# Runs one target: the working corpus in $(FUZZ_B) first (new inputs go
# there), the checked-in seeds after it; findings land in artifacts/.
$(addprefix fuzz-run-,$(FUZZ_ALL)): fuzz-run-%: $(FUZZ_B)/bin/%
	@mkdir -p $(FUZZ_B)/corpus/$* $(FUZZ_B)/artifacts/$* tests/fuzz/$*/corpus
	@echo "fuzz: running $* for $(FUZZ_SECS) s"
	@ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
	 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	 $< -max_total_time=$(FUZZ_SECS) $(FUZZ_RUN_FLAGS) \
	    $(if $(wildcard tests/fuzz/$*.dict),-dict=tests/fuzz/$*.dict) \
	    -artifact_prefix=$(FUZZ_B)/artifacts/$*/ \
	    $(FUZZ_B)/corpus/$* tests/fuzz/$*/corpus \
	    > $(FUZZ_B)/$*.log 2>&1 || \
	 { tail -n 60 $(FUZZ_B)/$*.log; \
	   echo "fuzz: $* FAILED; the input is in $(FUZZ_B)/artifacts/$*/;" \
	        "copy it to tests/fuzz/$*/regress/"; exit 1; }
	@grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' \
	   $(FUZZ_B)/$*.log | sed 's/^/fuzz: $*: /'

# ---- compiling with the fuzz flags ---------------------------------------

$(FUZZ_B)/obj/runtime/%.o: runtime/src/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_RT_INC) -MMD -MP -c $< -o $@

$(FUZZ_B)/obj/idlc/%.o: idlc/%.c $(FUZZ_IDLC_GEN)/parser.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_IDLC_INC) -MMD -MP -c $< -o $@

$(FUZZ_B)/obj/idlc/%.o: $(FUZZ_IDLC_GEN)/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_IDLC_INC) -MMD -MP -c $< -o $@

$(FUZZ_B)/obj/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_RT_INC) $(FUZZ_IDLC_INC) \
	  -I$(FUZZ_B)/gen -MMD -MP -c $< -o $@

# The flex and bison outputs, regenerated with our own names.
$(FUZZ_IDLC_GEN)/parser.c $(FUZZ_IDLC_GEN)/parser.h &: $(FUZZ_IDLC_Y)
	@mkdir -p $(@D)
	bison -o $(FUZZ_IDLC_GEN)/parser.c --defines=$(FUZZ_IDLC_GEN)/parser.h $<

$(FUZZ_IDLC_GEN)/lexer.c: $(FUZZ_IDLC_L) $(FUZZ_IDLC_GEN)/parser.h
	@mkdir -p $(@D)
	flex -o $@ $<

# ---- the targets -----------------------------------------------------------

$(FUZZ_RT_LIB): $(FUZZ_RT_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

FUZZ_LINK = $(FUZZ_CC) $(FUZZ_SAN_LD) -g -o $@ $^

$(FUZZ_B)/bin/fuzz_codec: $(FUZZ_B)/obj/fuzz/fuzz_codec.o $(FUZZ_RT_LIB)
	@mkdir -p $(@D)
	$(FUZZ_LINK) $(RT_LIBS)

$(FUZZ_B)/bin/fuzz_frames: $(FUZZ_B)/obj/fuzz/fuzz_frames.o $(FUZZ_RT_LIB)
	@mkdir -p $(@D)
	$(FUZZ_LINK) $(RT_LIBS)


FUZZ_IDLC_LIB := $(FUZZ_B)/lib/libidlc-fuzz.a
$(FUZZ_IDLC_LIB): $(FUZZ_IDLC_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_B)/bin/fuzz_idlc: $(FUZZ_B)/obj/fuzz/fuzz_idlc.o $(FUZZ_IDLC_LIB)
	@mkdir -p $(@D)
	$(FUZZ_LINK) -lm

# fuzz_generated: shapes.idl (and its imports) through the normal build's
# idlc, the generated .c compiled with the fuzz flags, plus structs.inc: the
# list of every <struct>_decode in the generated headers.
FUZZ_SHAPES_GEN := $(FUZZ_B)/gen
FUZZ_SHAPES_IDL := tests/idl/shapes.idl tests/idl/common.idl

# $(call fuzz_gen_shapes,DIR): idlc on FUZZ_SHAPES_IDL into DIR, and
# DIR/structs.inc. Shared with the regression build below.
define fuzz_gen_shapes
	@mkdir -p $(1)
	$(IDLC) -I tests/idl -o $(1) $(FUZZ_SHAPES_IDL)
	grep -ho 'int [A-Za-z0-9_]*_decode(ember_dec \*d, [A-Za-z0-9_]* \*v)' \
	  $(1)/shapes.h $(1)/common.h | \
	  sed 's/^int \([A-Za-z0-9_]*\)_decode(.*/X(\1)/' | sort -u > $(1)/structs.inc
endef

$(FUZZ_SHAPES_GEN)/shapes.c $(FUZZ_SHAPES_GEN)/common.c $(FUZZ_SHAPES_GEN)/structs.inc &: $(FUZZ_SHAPES_IDL) $(IDLC)
	$(call fuzz_gen_shapes,$(FUZZ_SHAPES_GEN))

# Generated code inlines codec.h: rebuild it when a public header changes.
$(FUZZ_B)/obj/gen/%.o: $(FUZZ_SHAPES_GEN)/%.c $(wildcard runtime/include/ember/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_RT_INC) -I$(FUZZ_SHAPES_GEN) -c $< -o $@

$(FUZZ_B)/obj/fuzz/fuzz_generated.o: $(FUZZ_SHAPES_GEN)/structs.inc

$(FUZZ_B)/bin/fuzz_generated: $(FUZZ_B)/obj/fuzz/fuzz_generated.o \
                              $(FUZZ_B)/obj/gen/shapes.o $(FUZZ_B)/obj/gen/common.o \
                              $(FUZZ_RT_LIB)
	@mkdir -p $(@D)
	$(FUZZ_LINK) $(RT_LIBS)

# fuzz_pb's live stages (a root, a node) serve shapes.idl (the same
# generated code as fuzz_generated).
$(FUZZ_B)/obj/fuzz/fuzz_pb.o: $(FUZZ_SHAPES_GEN)/structs.inc
$(FUZZ_B)/bin/fuzz_pb: $(FUZZ_B)/obj/fuzz/fuzz_pb.o $(FUZZ_B)/obj/gen/shapes.o \
                       $(FUZZ_B)/obj/gen/common.o $(FUZZ_RT_LIB)
	@mkdir -p $(@D)
	$(FUZZ_LINK) $(RT_LIBS)

# ---- regression replays in `make test` ------------------------------------
#
# Each available target is also built without libFuzzer (tests/fuzz/replay.c
# provides main) with the suite's own compiler and flags ($(CC), $(SAN)),
# and replays its regress/ inputs and its seed corpus.

REGRESS_B := $(B)/fuzz-regress
REGRESS_CFLAGS = $(CSTD) $(WARN) $(OPT) $(SAN) $(EVENT_CFLAGS) $(CFLAGS)
REGRESS_TARGETS := $(FUZZ_ALL)

$(REGRESS_B)/obj/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(@D)
	$(CC) $(REGRESS_CFLAGS) $(FUZZ_RT_INC) $(FUZZ_IDLC_INC) -MMD -MP -c $< -o $@

# The runtime comes from the suite's own libember.a (same CC and SAN).
REGRESS_RT_LIB    = $(LIBEMBER_A)
# idlc's front end comes from the suite's own objects (mk/idlc.mk), minus
# main.o.
REGRESS_IDLC_LIB  = $(REGRESS_B)/lib/libidlc-regress.a

$(REGRESS_IDLC_LIB): $(IDLC_LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(REGRESS_B)/bin/replay_fuzz_codec: $(REGRESS_B)/obj/fuzz/fuzz_codec.o \
                                    $(REGRESS_B)/obj/fuzz/replay.o $(REGRESS_RT_LIB)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $^ $(RT_LIBS)

$(REGRESS_B)/bin/replay_fuzz_frames: $(REGRESS_B)/obj/fuzz/fuzz_frames.o \
                                     $(REGRESS_B)/obj/fuzz/replay.o $(REGRESS_RT_LIB)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $^ $(RT_LIBS)


$(REGRESS_B)/bin/replay_fuzz_idlc: $(REGRESS_B)/obj/fuzz/fuzz_idlc.o \
                                   $(REGRESS_B)/obj/fuzz/replay.o $(REGRESS_IDLC_LIB)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $^ -lm

# fuzz_generated: the same shapes.idl through the suite's own idlc, the
# generated code compiled with the suite's flags.
REGRESS_SHAPES_GEN := $(REGRESS_B)/gen

$(REGRESS_SHAPES_GEN)/shapes.c $(REGRESS_SHAPES_GEN)/common.c $(REGRESS_SHAPES_GEN)/structs.inc &: $(FUZZ_SHAPES_IDL) $(IDLC)
	$(call fuzz_gen_shapes,$(REGRESS_SHAPES_GEN))

$(REGRESS_B)/obj/gen/%.o: $(REGRESS_SHAPES_GEN)/%.c $(wildcard runtime/include/ember/*.h)
	@mkdir -p $(@D)
	$(CC) $(REGRESS_CFLAGS) $(FUZZ_RT_INC) -I$(REGRESS_SHAPES_GEN) -c $< -o $@

$(REGRESS_B)/obj/fuzz/fuzz_generated.o: tests/fuzz/fuzz_generated.c $(REGRESS_SHAPES_GEN)/structs.inc
	@mkdir -p $(@D)
	$(CC) $(REGRESS_CFLAGS) $(FUZZ_RT_INC) -I$(REGRESS_SHAPES_GEN) -MMD -MP -c $< -o $@

$(REGRESS_B)/bin/replay_fuzz_generated: $(REGRESS_B)/obj/fuzz/fuzz_generated.o \
                                        $(REGRESS_B)/obj/gen/shapes.o \
                                        $(REGRESS_B)/obj/gen/common.o \
                                        $(REGRESS_B)/obj/fuzz/replay.o $(REGRESS_RT_LIB)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $^ $(RT_LIBS)

# fuzz_pb: the same shapes.idl code for its live stages.
$(REGRESS_B)/obj/fuzz/fuzz_pb.o: tests/fuzz/fuzz_pb.c $(REGRESS_SHAPES_GEN)/structs.inc
	@mkdir -p $(@D)
	$(CC) $(REGRESS_CFLAGS) $(FUZZ_RT_INC) -I$(REGRESS_SHAPES_GEN) -MMD -MP -c $< -o $@

$(REGRESS_B)/bin/replay_fuzz_pb: $(REGRESS_B)/obj/fuzz/fuzz_pb.o \
                                 $(REGRESS_B)/obj/gen/shapes.o $(REGRESS_B)/obj/gen/common.o \
                                 $(REGRESS_B)/obj/fuzz/replay.o $(REGRESS_RT_LIB)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $^ $(RT_LIBS)

test-fuzz-regress: $(addprefix $(REGRESS_B)/bin/replay_,$(REGRESS_TARGETS))
	@for t in $(REGRESS_TARGETS); do \
	  mkdir -p tests/fuzz/$$t/regress tests/fuzz/$$t/corpus; \
	  printf 'test-fuzz-regress: %s: ' $$t; \
	  $(RUNNER) $(REGRESS_B)/bin/replay_$$t tests/fuzz/$$t/regress \
	    tests/fuzz/$$t/corpus || exit 1; \
	done

# ---- whole-suite sanitizer and valgrind runs -------------------------------

ASAN_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

check-asan:
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:verify_asan_link_order=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 EMBER_TEST_SLOW=3 \
	$(MAKE) B=build/asan SAN='$(ASAN_SAN)' LDFLAGS='$(ASAN_SAN)' test
	@echo "check-asan: the whole suite passed under ASan + UBSan"

VALGRIND := valgrind --quiet --leak-check=full \
            --errors-for-leak-kinds=definite,indirect --error-exitcode=1 \
            --track-fds=no

check-valgrind:
	EMBER_TEST_SLOW=20 $(MAKE) B=build/valgrind OPT='-O1 -g' RUNNER='$(VALGRIND)' IDLC_VALGRIND=1 test
	@echo "check-valgrind: the whole suite passed under memcheck"

-include $(shell find $(FUZZ_B) -name '*.d' 2>/dev/null)

# The regression replays are cheap (a few ms) and belong to every test run.
TEST_TARGETS += test-fuzz-regress

# ---- hostile peers and faults against a live root -------------------------
#
# tests/hostile: one program, every case against an in-process root (see
# tests/hostile/hostile.c). Built against the suite's libember.a.

HOSTILE_SRC := $(sort $(wildcard tests/hostile/*.c))
# The typed H_PLAYER method decodes with idlc's generated code for
# tests/idl/game.idl (the golden copy, kept equal to idlc's output by
# test-gen).
HOSTILE_GOLDEN_OBJ := $(B)/obj/tests/golden/game.o
HOSTILE_OBJ := $(HOSTILE_SRC:tests/hostile/%.c=$(B)/obj/tests/hostile/%.o) \
               $(HOSTILE_GOLDEN_OBJ)
HOSTILE_BIN := $(B)/bin/test-hostile

# -Iruntime/src for probe-internal.h and ref-internal.h alone: counters and
# sizes the cases assert on.
$(B)/obj/tests/hostile/%.o: tests/hostile/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(EMBER_INC) -Iruntime/src $(EVENT_CFLAGS) -c $< -o $@

$(B)/obj/tests/golden/%.o: tests/golden/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(EMBER_INC) $(EVENT_CFLAGS) -c $< -o $@

$(HOSTILE_BIN): $(HOSTILE_OBJ) $(LIBEMBER_A)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $(HOSTILE_OBJ) $(LIBEMBER_A) $(RT_LIBS)

.PHONY: test-hostile
test-hostile: $(HOSTILE_BIN)
	$(RUNNER) $(HOSTILE_BIN)
TEST_TARGETS += test-hostile

# tests/faults: process faults (kill -9, SIGSTOP, root restart, graceful
# stop) and the soak test; shares tests/hostile/harness.c.
FAULTS_OBJ := $(B)/obj/tests/faults/faults.o $(B)/obj/tests/hostile/harness.o \
              $(HOSTILE_GOLDEN_OBJ)
FAULTS_BIN := $(B)/bin/test-faults
SOAK_SECS  ?= 60

$(B)/obj/tests/faults/%.o: tests/faults/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(EMBER_INC) $(EVENT_CFLAGS) -c $< -o $@

$(FAULTS_BIN): $(FAULTS_OBJ) $(LIBEMBER_A)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $(FAULTS_OBJ) $(LIBEMBER_A) $(RT_LIBS)

.PHONY: test-faults soak
test-faults: $(FAULTS_BIN)
	$(RUNNER) $(FAULTS_BIN)

soak: $(FAULTS_BIN)
	$(RUNNER) $(FAULTS_BIN) soak $(SOAK_SECS)
TEST_TARGETS += test-faults

# tests/netns: the demo cluster over three network namespaces (needs root;
# prints SKIP with the reason otherwise).
.PHONY: test-netns
test-netns: $(EX_BIN_PATHS)
	sh tests/netns/run.sh $(B)/bin $(B)/netns-test
TEST_TARGETS += test-netns
