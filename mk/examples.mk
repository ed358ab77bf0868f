# The example game cluster (examples/, idl/, docs/cluster.md).
#
#   make examples       build master, gate, game, db, net, bot into $(B)/bin
#   make demo           start the cluster on loopback, run 20 bots, stop it
#   make demo-mixed     the same with game2 the Twisted node
#                       examples/pygame/game.py (installs python3-twisted)
#   make test-examples  the cluster end to end, a stop under load, the
#                       servers started one by one, the status page in
#                       chromium, the cluster over TLS, net on ::1,
#                       net's client bounds against a flooding client,
#                       its Prometheus metrics, the admin web against
#                       attacks, the mixed cluster (a Twisted game node
#                       among the ember servers),
#                       net against a held gate and a client that hangs up
#                       with its commands in flight, again and again, game.py
#                       refusing bad configs as the C servers do, and
#                       the master's admin web out of memory
#
#   make generated      rewrite generated/ from idl/*.idl with this idlc
#   make test-generated generated/ is byte for byte what this idlc makes
#
# The servers' services are in idl/*.idl; idlc's output for them is checked
# in under generated/ (so it can be read without building anything), and the
# examples compile that copy. Nothing regenerates it but `make generated`.

EX_GEN   := generated
EX_OBJ   := $(B)/obj/examples
EX_IDLS  := $(wildcard idl/*.idl)
EX_MODS  := $(EX_IDLS:idl/%.idl=%)
EX_GEN_O := $(EX_MODS:%=$(EX_OBJ)/gen/%.o)
EX_BINS  := master gate game db net bot freeport
EX_BIN_PATHS := $(EX_BINS:%=$(B)/bin/%) $(B)/bin/pygame

JANSSON_CFLAGS := $(shell pkg-config --cflags jansson 2>/dev/null)
JANSSON_LIBS   := $(shell pkg-config --libs jansson 2>/dev/null || echo -ljansson)
SQLITE_CFLAGS  := $(shell pkg-config --cflags sqlite3 2>/dev/null)
SQLITE_LIBS    := $(shell pkg-config --libs sqlite3 2>/dev/null || echo -lsqlite3)

EX_CFLAGS = $(CFLAGS_ALL) $(EMBER_INC) -I$(EX_GEN) -Iexamples/common -I$(EX_OBJ)/master \
            $(EVENT_CFLAGS) $(JANSSON_CFLAGS) $(SQLITE_CFLAGS)
# RT_LIBS (mk/runtime.mk): everything a program linking libember.a needs
# after it (libevent, OpenSSL, libm); the servers use libevent directly too.
EX_LIBS   = $(LIBEMBER_A) $(RT_LIBS)

.PHONY: examples generated ex-gen-new test-generated demo demo-mixed test-examples test-cluster \
        test-status-page test-stop-under-load test-standalone test-tls test-hosts test-flood \
        test-metrics test-admin test-mixed test-net-churn test-pygame-config test-oom

examples: $(EX_BIN_PATHS)

# generated/ against a fresh idlc run into $(EX_GEN_NEW): checked before
# anything compiles generated/ (so a stale copy fails with this message, not
# with the compile errors of old code), and by make test.
EX_GEN_NEW := $(B)/gen/generated

ex-gen-new: $(IDLC) $(EX_IDLS)
	@rm -rf $(EX_GEN_NEW)
	@mkdir -p $(EX_GEN_NEW)
	@for f in $(EX_IDLS); do $(IDLC) -I idl -o $(EX_GEN_NEW) $$f || exit 1; done

generated: ex-gen-new
	@mkdir -p $(EX_GEN)
	@rm -f $(EX_GEN)/*.h $(EX_GEN)/*.c
	cp $(EX_GEN_NEW)/*.h $(EX_GEN_NEW)/*.c $(EX_GEN)/
	@echo "generated: $(EX_GEN)/ rewritten from idl/*.idl; commit it with the change"

test-generated: ex-gen-new
	@diff -ru $(EX_GEN) $(EX_GEN_NEW) > $(EX_GEN_NEW).diff 2>&1 || { \
	    echo "test-generated: FAIL: generated/ is stale: it is not what this idlc makes from idl/*.idl (idlc or idl/ changed since it was written)."; \
	    echo "test-generated: run 'make generated' and commit generated/ with your change. The differences:"; \
	    head -n 40 $(EX_GEN_NEW).diff; exit 1; }
	@echo "test-generated: generated/ is what this idlc makes from idl/*.idl"

$(EX_OBJ)/gen/%.o: $(EX_GEN)/%.c | test-generated
	@mkdir -p $(dir $@)
	$(CC) $(EX_CFLAGS) -c $< -o $@

$(EX_OBJ)/%.o: examples/%.c | test-generated
	@mkdir -p $(dir $@)
	$(CC) $(EX_CFLAGS) -c $< -o $@

# The status page, embedded as bytes (no overlong string literals).
$(EX_OBJ)/master/status_page.h: examples/master/status.html
	@mkdir -p $(dir $@)
	@{ echo '/* generated from examples/master/status.html */'; \
	   echo 'static const char status_page_head[] = {'; \
	   sed '/<!-- INITIAL -->/,$$d' $< | od -An -v -tx1 | sed 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	   echo '0};'; \
	   echo 'static const char status_page_tail[] = {'; \
	   sed '1,/<!-- INITIAL -->/d' $< | od -An -v -tx1 | sed 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	   echo '0};'; } > $@.tmp && mv $@.tmp $@

# Its script, the same way.
$(EX_OBJ)/master/status_script.h: examples/master/status.js
	@mkdir -p $(dir $@)
	@{ echo '/* generated from examples/master/status.js */'; \
	   echo 'static const char status_script[] = {'; \
	   od -An -v -tx1 $< | sed 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	   echo '0};'; } > $@.tmp && mv $@.tmp $@

$(EX_OBJ)/master/master.o: $(EX_OBJ)/master/status_page.h $(EX_OBJ)/master/status_script.h

EX_COMMON_O := $(EX_OBJ)/common/config.o $(EX_OBJ)/common/metrics.o $(EX_OBJ)/common/webguard.o
EX_SERVER_O := $(EX_OBJ)/common/server.o $(EX_COMMON_O)
EX_FRAME_O  := $(EX_OBJ)/common/frame.o

$(B)/bin/master: $(EX_OBJ)/master/master.o $(EX_OBJ)/master/guard.o $(EX_COMMON_O) $(EX_GEN_O) $(LIBEMBER_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $(filter %.o,$^) $(EX_LIBS) $(JANSSON_LIBS)

$(B)/bin/gate: $(EX_OBJ)/gate/gate.o
$(B)/bin/game: $(EX_OBJ)/game/game.o
$(B)/bin/net: $(EX_OBJ)/net/net.o $(EX_FRAME_O)
$(B)/bin/gate $(B)/bin/game $(B)/bin/net: $(EX_SERVER_O) $(EX_GEN_O) $(LIBEMBER_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $(filter %.o,$^) $(EX_LIBS) $(JANSSON_LIBS)

$(B)/bin/db: $(EX_OBJ)/db/db.o $(EX_SERVER_O) $(EX_GEN_O) $(LIBEMBER_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $(filter %.o,$^) $(EX_LIBS) $(JANSSON_LIBS) $(SQLITE_LIBS)

$(B)/bin/bot: $(EX_OBJ)/bot/bot.o $(EX_FRAME_O) $(EX_GEN_O) $(LIBEMBER_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $(filter %.o,$^) $(EX_LIBS)

# The Twisted game node: Python, installed next to the servers so that the
# master starts it as app "pygame".
$(B)/bin/pygame: examples/pygame/game.py
	@mkdir -p $(dir $@)
	install -m 755 $< $@

$(B)/bin/freeport: $(EX_OBJ)/tools/freeport.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^

# DEMO_BOTS bots; the database persists in var/ between runs.
DEMO_BOTS ?= 20
demo: lib idlc examples
	@B=$(B) BOTS=$(DEMO_BOTS) scripts/demo.sh

# The mixed cluster needs Twisted: the Makefile's first step installs it
# for demo-mixed (scripts/deps.sh mixed).
demo-mixed: lib idlc examples
	@B=$(B) BOTS=$(DEMO_BOTS) MIXED=1 scripts/demo.sh

test-mixed: lib idlc examples
	@B=$(B) tests/e2e/mixed.sh

# The master's admin web out of memory: a preloaded calloc that fails on
# demand (tests/e2e/failcalloc.c), built without the sanitizers.
FAILCALLOC_SO := $(B)/lib/failcalloc.so
$(FAILCALLOC_SO): tests/e2e/failcalloc.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(OPT) -fPIC -shared -o $@ $< -ldl

test-oom: lib idlc examples $(FAILCALLOC_SO)
	@B=$(B) tests/e2e/oom.sh

# game.py alone refuses a bad config as the C servers do (no cluster runs).
test-pygame-config: $(B)/bin/game $(B)/bin/pygame
	@rm -rf $(B)/e2e/pygame-config && mkdir -p $(B)/e2e/pygame-config
	@python3 tests/e2e/pygame_config.py $(B)/bin $(B)/e2e/pygame-config

test-cluster: lib idlc examples
	@B=$(B) tests/e2e/cluster.sh

test-status-page: lib idlc examples
	@B=$(B) tests/e2e/status_page.sh

test-stop-under-load: lib idlc examples
	@B=$(B) tests/e2e/stop_under_load.sh

test-standalone: lib idlc examples
	@B=$(B) tests/e2e/standalone.sh

test-tls: lib idlc examples
	@B=$(B) tests/e2e/tls.sh

test-hosts: lib idlc examples
	@B=$(B) tests/e2e/hosts.sh

test-flood: lib idlc examples
	@B=$(B) tests/e2e/flood.sh

test-metrics: lib idlc examples
	@B=$(B) tests/e2e/metrics.sh

test-admin: lib idlc examples
	@B=$(B) tests/e2e/admin.sh

# net (the real binary, a child process) against an in-process gate that
# holds every command: tests/e2e/net_churn.c.
NET_CHURN_BIN := $(B)/bin/test-net-churn

$(EX_OBJ)/tests/net_churn.o: tests/e2e/net_churn.c | test-generated
	@mkdir -p $(dir $@)
	$(CC) $(EX_CFLAGS) -c $< -o $@

$(NET_CHURN_BIN): $(EX_OBJ)/tests/net_churn.o $(EX_FRAME_O) $(EX_GEN_O) $(LIBEMBER_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $(filter %.o,$^) $(EX_LIBS)

test-net-churn: $(NET_CHURN_BIN) $(B)/bin/net
	@rm -rf $(B)/e2e/net-churn && mkdir -p $(B)/e2e/net-churn
	$(NET_CHURN_BIN) $(B)/bin/net $(B)/e2e/net-churn

TEST_TARGETS += test-generated test-examples
test-examples: test-cluster test-stop-under-load test-standalone test-status-page test-tls \
               test-hosts test-flood test-metrics test-admin test-mixed test-net-churn \
               test-pygame-config test-oom
