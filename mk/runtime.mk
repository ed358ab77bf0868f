# libember: the runtime (runtime/src), its CUnit suites (tests/runtime).
#
#   make lib            $(B)/lib/libember.a and $(B)/lib/libember.so
#   make test-runtime   build and run tests/runtime/*.c
#
# Objects are built with -fvisibility=hidden; public functions carry
# EMBER_API (runtime/src/ember-internal.h), so the .so exports only them.

RT_SRC   := $(sort $(wildcard runtime/src/*.c))
RT_OBJ   := $(RT_SRC:runtime/src/%.c=$(B)/obj/runtime/%.o)
RT_CFLAGS = $(CFLAGS_ALL) $(EMBER_INC) $(EVENT_CFLAGS) -fvisibility=hidden

# Registration proofs (HMAC-SHA256) and TLS come from OpenSSL.
SSL_CFLAGS := $(shell pkg-config --cflags libssl libcrypto 2>/dev/null)
SSL_LIBS   := $(or $(shell pkg-config --libs libssl libcrypto 2>/dev/null),-lssl -lcrypto)
RT_CFLAGS += $(SSL_CFLAGS)
# What every program linking libember.a links after it.
RT_LIBS    = $(EVENT_LIBS) $(SSL_LIBS) -lm

LIBEMBER_SONAME := libember.so.$(EMBER_SOVER)

.PHONY: lib test-runtime
lib: $(LIBEMBER_A) $(LIBEMBER_SO)

$(B)/obj/runtime/%.o: runtime/src/%.c
	@mkdir -p $(@D)
	$(CC) $(RT_CFLAGS) -c $< -o $@

$(LIBEMBER_A): $(RT_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(B)/lib/libember.so.$(EMBER_VERSION): $(RT_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,$(LIBEMBER_SONAME) $(SAN) -o $@ $^ $(RT_LIBS)

$(B)/lib/$(LIBEMBER_SONAME): $(B)/lib/libember.so.$(EMBER_VERSION)
	ln -sf $(<F) $@

$(LIBEMBER_SO): $(B)/lib/$(LIBEMBER_SONAME)
	ln -sf $(<F) $@

# ---- tests ----
RT_TEST_SRC := $(sort $(wildcard tests/runtime/*.c))
RT_TEST_OBJ := $(RT_TEST_SRC:tests/runtime/%.c=$(B)/obj/tests/runtime/%.o)
RT_TEST_BIN := $(B)/bin/test-runtime

$(B)/obj/tests/runtime/%.o: tests/runtime/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(EMBER_INC) $(EVENT_CFLAGS) -Iruntime/src -c $< -o $@

# Linked statically so the tests can reach internal symbols (frame parser).
$(RT_TEST_BIN): $(RT_TEST_OBJ) $(LIBEMBER_A)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $(RT_TEST_OBJ) $(LIBEMBER_A) $(RT_LIBS) -lcunit

# A locale that writes 1.5 as 1,5 (tests/runtime/test_pb.c: PB's float
# text must not follow it), made from Debian's locales data in the build
# tree; the suite finds it through LOCPATH.
RT_LOCALE := $(B)/locale/de_DE.UTF-8/LC_NUMERIC
$(RT_LOCALE):
	@mkdir -p $(B)/locale
	localedef -i de_DE -f UTF-8 $(B)/locale/de_DE.UTF-8

test-runtime: $(RT_TEST_BIN) $(RT_LOCALE)
	LOCPATH=$(abspath $(B)/locale) $(RUNNER) $(RT_TEST_BIN)

# The private headers' order (docs/internals.md).
.PHONY: test-headers
test-headers:
	@scripts/check-headers.sh $(CC) $(RT_CFLAGS)
TEST_TARGETS += test-headers

TEST_TARGETS += test-runtime
