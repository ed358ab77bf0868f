# bench — ember against a raw libevent baseline (bench/, docs/performance.md).
#
#   make bench        build and run every workload (BENCH_SECS=3 per run);
#                     BENCH_ONLY="cluster" (or another workload) runs only that
#   make bench-plot   render the latency-vs-in-flight sweep to $(B)/bench/latency.png
#
# Nothing here is built by `make` or `make test`.

BENCH_SECS ?= 3
BENCH_DIR  := $(B)/bench
BENCH_OBJ  := $(BENCH_DIR)/obj
BENCH_GEN  := $(BENCH_DIR)/gen

BENCH_COMMON_O := $(BENCH_OBJ)/common/bench.o
RAW_SERVER     := $(BENCH_DIR)/raw_server
RAW_CLIENT     := $(BENCH_DIR)/raw_client
EMBER_SERVER   := $(BENCH_DIR)/ember_server
EMBER_CLIENT   := $(BENCH_DIR)/ember_client

BENCH_CFLAGS = $(CFLAGS_ALL) $(EVENT_CFLAGS)

$(BENCH_OBJ)/common/%.o: bench/common/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -c $< -o $@

$(BENCH_OBJ)/raw/%.o: bench/raw/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -c $< -o $@

$(RAW_SERVER): $(BENCH_OBJ)/raw/raw_server.o $(BENCH_OBJ)/raw/rawconn.o $(BENCH_COMMON_O)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(EVENT_LIBS)

$(RAW_CLIENT): $(BENCH_OBJ)/raw/raw_client.o $(BENCH_OBJ)/raw/rawconn.o $(BENCH_COMMON_O)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(EVENT_LIBS)

.PHONY: bench bench-raw bench-ember bench-plot bench-sweep
bench-raw: $(RAW_SERVER) $(RAW_CLIENT)

# The ember peer: a root (server) and nodes (client) on idlc's stubs,
# generated from bench/bench.idl into $(BENCH_GEN).
BENCH_EMBER_CFLAGS = $(BENCH_CFLAGS) $(EMBER_INC) -I$(BENCH_GEN)
BENCH_EMBER_LIBS   = $(LIBEMBER_A) $(RT_LIBS)
BENCH_EMBER_O      = $(BENCH_OBJ)/ember/counting.o $(BENCH_OBJ)/gen/bench.o $(BENCH_COMMON_O)

$(BENCH_GEN)/bench.h: bench/bench.idl $(IDLC)
	@mkdir -p $(@D)
	$(IDLC) -o $(@D) $<
$(BENCH_GEN)/bench.c: $(BENCH_GEN)/bench.h
	@:

$(BENCH_OBJ)/gen/bench.o: $(BENCH_GEN)/bench.c $(BENCH_GEN)/bench.h
	@mkdir -p $(@D)
	$(CC) $(BENCH_EMBER_CFLAGS) -c $< -o $@

$(BENCH_OBJ)/ember/%.o: bench/ember/%.c $(BENCH_GEN)/bench.h
	@mkdir -p $(@D)
	$(CC) $(BENCH_EMBER_CFLAGS) -c $< -o $@

$(EMBER_SERVER): $(BENCH_OBJ)/ember/ember_server.o $(BENCH_EMBER_O) $(LIBEMBER_A)
	$(CC) $(CFLAGS_ALL) -o $@ $(filter %.o,$^) $(BENCH_EMBER_LIBS)

$(EMBER_CLIENT): $(BENCH_OBJ)/ember/ember_client.o $(BENCH_EMBER_O) $(LIBEMBER_A)
	$(CC) $(CFLAGS_ALL) -o $@ $(filter %.o,$^) $(BENCH_EMBER_LIBS)

bench-ember: $(EMBER_SERVER) $(EMBER_CLIENT)

# The PB workloads' ember root (bench/pb.sh; the Twisted side is Python).
PB_BENCH_SERVER := $(BENCH_DIR)/pb_server
$(BENCH_OBJ)/pb/%.o: bench/pb/%.c $(BENCH_GEN)/bench.h
	@mkdir -p $(@D)
	$(CC) $(BENCH_EMBER_CFLAGS) -c $< -o $@

$(PB_BENCH_SERVER): $(BENCH_OBJ)/pb/pb_server.o $(BENCH_OBJ)/gen/bench.o $(LIBEMBER_A)
	$(CC) $(CFLAGS_ALL) -o $@ $(filter %.o,$^) $(BENCH_EMBER_LIBS)

# The cluster workload (bench/cluster.sh) runs the example servers and bot.
bench: bench-raw bench-ember $(PB_BENCH_SERVER) examples
	@B=$(B) IDLC=$(IDLC) BENCH_SECS=$(BENCH_SECS) bench/run.sh

bench-sweep: bench-raw bench-ember
	@B=$(B) IDLC=$(IDLC) bench/run.sh --sweep-only

# Renders the sweep that the last `make bench` (or bench-sweep) wrote.
bench-plot:
	@test -s $(BENCH_DIR)/latency.dat || $(MAKE) --no-print-directory bench-sweep
	@bench/plot.sh $(BENCH_DIR)/latency.dat $(BENCH_DIR)/latency.png
