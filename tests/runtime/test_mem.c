/*
 * test_mem.c — the memory policy for large frames: spare large buffers and
 * the spare arena block are reused (no allocation per large frame), stay
 * within their count and byte budget whatever size goes through them, and
 * are all freed by a sweep that finds them unused. No timing: the sweeps are
 * called directly, as the endpoint's sweep timer would.
 */
#include <string.h>

#include "buf-internal.h"
#include "ember-internal.h"
#include "helpers.h"

#define MIB ((size_t)1024 * 1024)

/* Fills a buffer as a frame would (so ASan/valgrind see the memory used). */
static void fill(ember_buf *b, size_t n)
{
    CU_ASSERT_EQUAL_FATAL(ember_buf_reserve(b, n), 0);
    memset(b->data + b->len, 0x5a, n);
    b->len += n;
}

static void check_bounds(const ember_bufpool *pool)
{
    CU_ASSERT(pool->nlarge <= EMBER_BUF_LARGE_MAX);
    CU_ASSERT(pool->large_bytes <= EMBER_BUF_LARGE_BUDGET);
    size_t sum = 0;
    for (int i = 0; i < pool->nlarge; i++)
        sum += pool->large_cap[i];
    CU_ASSERT_EQUAL(sum, pool->large_bytes);
}

static void test_large_reuse(void)
{
    ember_bufpool pool;
    memset(&pool, 0, sizeof pool);
    ember_buf in = {NULL, 0, 0, 0, &pool, 0}, out = {NULL, 0, 0, 0, &pool, 0};

    /* A 64 KiB value: the frame does not fit a block. */
    fill(&in, 70000);
    fill(&out, 70000);
    ember_buf_release(&in);
    ember_buf_release(&out);
    CU_ASSERT_EQUAL(pool.nlarge, 2);
    check_bounds(&pool);

    /* Steady state: the next frames of that size allocate nothing, whether
     * they start large or grow out of a block (after one round that puts a
     * standard block in the pool). */
    uint64_t before = 0;
    for (int i = 0; i < 10; i++) {
        if (i == 1)
            before = ember_alloc_count();
        fill(&in, 70000);
        fill(&out, 100);
        fill(&out, 70000);
        ember_buf_consume(&in, ember_buf_used(&in));
        ember_buf_consume(&out, ember_buf_used(&out));
    }
    CU_ASSERT_EQUAL(ember_alloc_count(), before);
    check_bounds(&pool);

    /* Still in use at the first sweep; idle at the second: all freed. */
    ember_bufpool_sweep(&pool);
    CU_ASSERT_EQUAL(pool.nlarge, 2);
    ember_bufpool_sweep(&pool);
    CU_ASSERT_EQUAL(pool.nlarge, 0);
    CU_ASSERT_EQUAL(pool.large_bytes, 0);
    ember_bufpool_clear(&pool);
}

static void test_burst_bounded(void)
{
    ember_bufpool pool;
    memset(&pool, 0, sizeof pool);
    ember_buf b[4];
    for (int i = 0; i < 4; i++) {
        memset(&b[i], 0, sizeof b[i]);
        b[i].pool = &pool;
    }
    /* A burst of 10 MiB frames, four at a time: none is worth pinning. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 4; i++)
            fill(&b[i], 10 * MIB);
        for (int i = 0; i < 4; i++)
            ember_buf_release(&b[i]);
        check_bounds(&pool);
        CU_ASSERT_EQUAL(pool.large_bytes, 0);
    }
    /* An idle connection's kind of block, to see the sweep leaves it. */
    fill(&b[0], 100);
    ember_buf_release(&b[0]);
    CU_ASSERT_EQUAL(pool.n, 1);
    /* Mid-sized frames, more at once than the pool keeps. */
    for (int i = 0; i < 4; i++)
        fill(&b[i], 600 * 1024);
    for (int i = 0; i < 4; i++)
        ember_buf_release(&b[i]);
    check_bounds(&pool);
    CU_ASSERT(pool.nlarge >= 1);
    /* Then idle: everything large goes back. */
    ember_bufpool_sweep(&pool);
    ember_bufpool_sweep(&pool);
    CU_ASSERT_EQUAL(pool.large_bytes, 0);
    /* Standard blocks for idle connections are unaffected by the sweep. */
    CU_ASSERT_EQUAL(pool.n, 1);
    ember_bufpool_clear(&pool);
    CU_ASSERT_EQUAL(pool.n, 0);
}

static void test_arena_spare(void)
{
    ember_arena_spare spare;
    memset(&spare, 0, sizeof spare);
    uint64_t inl[8];
    ember_arena a;
    ember_arena_init(&a, inl, sizeof inl);
    a.spare = &spare;

    void *p = ember_arena_alloc_nz(&a, 65537);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    memset(p, 1, 65537);
    ember_arena_fini(&a);
    size_t kept = ember_arena_spare_bytes(&spare);
    CU_ASSERT(kept > 65537);

    /* The kept block serves the next call: no allocation. */
    uint64_t before = ember_alloc_count();
    for (int i = 0; i < 10; i++) {
        CU_ASSERT_PTR_NOT_NULL(ember_arena_alloc(&a, 65537));
        ember_arena_fini(&a);
    }
    CU_ASSERT_EQUAL(ember_alloc_count(), before);
    CU_ASSERT_EQUAL(ember_arena_spare_bytes(&spare), kept);

    /* A huge value is never kept. */
    p = ember_arena_alloc_nz(&a, 10 * MIB);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    memset(p, 2, 10 * MIB);
    ember_arena_fini(&a);
    CU_ASSERT(ember_arena_spare_bytes(&spare) <= EMBER_ARENA_SPARE_MAX);

    /* Idle across a whole sweep period: freed. */
    ember_arena_spare_sweep(&spare);
    ember_arena_spare_sweep(&spare);
    CU_ASSERT_EQUAL(ember_arena_spare_bytes(&spare), 0);
    ember_arena_spare_clear(&spare);
}

void add_mem_suite(void)
{
    CU_pSuite s = CU_add_suite("mem", NULL, NULL);
    CU_add_test(s, "large buffers are reused, then freed when idle",
                test_large_reuse);
    CU_add_test(s, "a burst of 10 MiB frames pins nothing", test_burst_bounded);
    CU_add_test(s, "the arena keeps one big block, within its cap",
                test_arena_spare);
}
